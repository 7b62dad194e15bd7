test_that("a ValueError of the core reaches R as a classed condition with Python's message", {
  skip_if_no_python()
  dir <- tempfile()
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE))
  for (f in c("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")) writeBin(charToRaw("abcd"), file.path(dir, f))
  err <- expect_error(fashion_mnist("test", root = dir), class = "equivariance_value_error")
  expect_s3_class(err, c("equivariance_value_error", "equivariance_error", "error", "condition"), exact = TRUE)
  msg <- conditionMessage(err)
  expect_match(msg, "^corrupt IDX file .*magic number")
  # Python's message only: no type prefix, no traceback, no reticulate hint
  expect_no_match(msg, "ValueError|Traceback|traceback|py_last_error|py_call_impl|File \"")
  expect_false(grepl("\n", msg))
  # the call is the user's, not an internal helper's
  expect_identical(conditionCall(err)[[1]], as.name("fashion_mnist"))
})

test_that("a TypeError of the core becomes equivariance_type_error", {
  skip_if_no_python()
  err <- expect_error(with_py_errors(core()$load_fashion_mnist("test", root = 3)),
    class = "equivariance_type_error")
  expect_match(conditionMessage(err), "^`root` must be a folder path")
})

test_that("a ValueError through the escnn wrappers is classed and has no traceback", {
  skip_if_no_escnn()
  err <- expect_error(escnn_c4_cnn(kernel_size = 4), class = "equivariance_value_error")
  expect_identical(conditionMessage(err), "`kernel_size` must be odd, got 4")
  expect_identical(conditionCall(err), quote(escnn_c4_cnn(kernel_size = 4)))
  err <- expect_error(rot2d_on_r2(N = 1.5), class = "equivariance_value_error")
  expect_match(conditionMessage(err), "^`N` must be a positive whole number or -1 .*got 1.5$")
  expect_error(field_type(rot2d_on_r2(4), "spin"), "^`reprs`: unknown representation", class = "equivariance_value_error")
})

test_that("errors raised in R by the package use the same classes and the user's call", {
  err <- expect_error(transform_rotate(TRUE), class = "equivariance_value_error")
  expect_identical(conditionMessage(err), "`degrees` must be a number, got TRUE.")
  expect_identical(conditionCall(err), quote(transform_rotate(TRUE)))
  wrong_kind <- expect_error(as_py_tensor("a", "x"), class = "equivariance_type_error")
  expect_s3_class(wrong_kind, "equivariance_error")
  expect_error(fashion_mnist("valid"), "`split`", class = "equivariance_value_error")
  expect_error(missing_python_error("test"), "install_equivariance", class = "equivariance_setup_error")
})

test_that("one handler catches every equivariance error", {
  caught <- tryCatch(transform_translate(0.5), equivariance_error = function(e) "caught")
  expect_identical(caught, "caught")
})

test_that("other Python exceptions keep their type in the message, without traceback", {
  skip_if_no_python()
  err <- expect_error(fashion_mnist("test", root = tempfile()), class = "equivariance_error")
  expect_false(inherits(err, "equivariance_value_error"))
  expect_match(conditionMessage(err), "^FileNotFoundError: `root`: folder not found")
  expect_no_match(conditionMessage(err), "Traceback|py_last_error")
})

test_that("R errors and conditions that are not Python's pass through unchanged", {
  err <- expect_error(with_py_errors(stop("plain R")), "plain R")
  expect_false(inherits(err, "equivariance_error"))
  stale <- expect_error(with_py_errors(stop("ValueError: typed in R")))
  expect_false(inherits(stale, "equivariance_error"))
})

test_that("an exception class of a module is recognised with or without its module", {
  expect_true(starts_with_type("equivariance.persistence.FormatError: bad", "FormatError"))
  expect_true(starts_with_type("FormatError: bad", "equivariance.persistence.FormatError"))
  expect_true(starts_with_type("ValueError: bad", "ValueError"))
  expect_false(starts_with_type("Error in f(): ValueError: bad", "ValueError"))
  skip_if_no_python()
  main <- reticulate::py_run_string(
    "class CustomValueError(ValueError):\n    pass\ndef fail():\n    raise CustomValueError('`x` is bad')",
    convert = FALSE
  )
  expect_error(call_py(main$fail()), "^`x` is bad$", class = "equivariance_value_error")
})
