test_that("the Python requirements come from the one shipped list", {
  reqs <- python_requirements()
  # ranges that install anywhere, not this machine's pins; no test tools
  expect_true(any(grepl("^torch>=", reqs)))
  expect_true(any(grepl("^numpy", reqs)))
  expect_false(any(grepl("==", reqs, fixed = TRUE)))
  expect_false(any(grepl("pytest", reqs, fixed = TRUE)))
  expect_false(any(grepl("^#", reqs)))
})

test_that("the core loads from the package's own Python files", {
  skip_if_no_python()
  mod <- core()
  expect_true(reticulate::py_has_attr(mod, "EquivarianceRegularizer"))
  expect_true(reticulate::py_has_attr(mod, "EquivarianceError"))
  expect_match(mod$`__file__`, "python[/\\\\]equivariance")
})

test_that("a missing Python module stops with an error naming install_equivariance()", {
  expect_error(missing_python_error("test"), "install_equivariance\\(\\)",
    class = "equivariance_setup_error")
})

test_that("without a usable Python, library() works and the first call names install_equivariance()", {
  rscript <- file.path(R.home("bin"), "Rscript")
  code <- "library(equivariance); cat('loaded\\n'); transform_rot90(1)"
  out <- suppressWarnings(system2(rscript, c("-e", shQuote(code)),
    stdout = TRUE, stderr = TRUE,
    env = c("RETICULATE_PYTHON=/nonexistent/python", "EQUIVARIANCE_REQUIRE_PYTHON=")
  ))
  expect_true("loaded" %in% out)
  expect_true(any(grepl("install_equivariance()", out, fixed = TRUE)))
})

test_that("library() finds the package's environment without setting environment variables", {
  skip_if_no_python()
  rscript <- file.path(R.home("bin"), "Rscript")
  code <- paste(
    "library(equivariance)",
    "cat('env:', Sys.getenv('RETICULATE_PYTHON_ENV', 'unset'), '\\n')",
    "cat('available:', equivariance_available(), '\\n')",
    "cat('env after:', Sys.getenv('RETICULATE_PYTHON_ENV', 'unset'), '\\n')",
    sep = "; "
  )
  out <- system2("env", c("-u", "RETICULATE_PYTHON", "-u", "RETICULATE_PYTHON_ENV", rscript,
    "-e", shQuote(code)), stdout = TRUE, stderr = TRUE)
  expect_true("env: unset " %in% out)
  expect_true("available: TRUE " %in% out)
  expect_true("env after: unset " %in% out)
})

test_that("tensor operators are registered only when reticulate has none", {
  skip_if_no_python()
  torch <- torch_module()
  a <- torch$ones(2L)
  expect_equal(as.array(2 * a - a + 1), c(2, 2))
  registered <- !is.null(getS3method("Ops", "torch.Tensor", optional = TRUE))
  expect_identical(registered, !reticulate_has_operators())
})
