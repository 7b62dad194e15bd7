# Messages raised for an R caller use R's words: NULL, TRUE/FALSE, c("a", "b"),
# "a", logical values, labels counted from 1.

test_that("r_words() turns Python's literals into R's", {
  cases <- c(
    "`x` must be None or True, got False" = "`x` must be NULL or TRUE, got FALSE",
    "`mode` must be 'max' or 'mean', got ['max', 'median']" =
      "`mode` must be \"max\" or \"mean\", got c(\"max\", \"median\")",
    "`x` must be a function, got NoneType" = "`x` must be a function, got NULL",
    "`x` must hold real numbers, got dtype torch.bool" = "`x` must hold real numbers, got logical values",
    "`x` must hold real numbers, got dtype torch.int64" = "`x` must hold real numbers, got integer values",
    "`momentum` must be a number in [0, 1] or None, got 5.0" =
      "`momentum` must be a number in [0, 1] or NULL, got 5",
    "`rotations` must be quarter turns, got [0, 5]" = "`rotations` must be quarter turns, got c(0, 5)",
    "`x` must be a tuple, got ('a', 1)" = "`x` must be a tuple, got c(\"a\", 1)",
    "`seed` must be from 0 to 2**64 - 1, got nan" = "`seed` must be from 0 to 2^64 - 1, got NaN",
    "`p` must be >= 1, got -inf" = "`p` must be >= 1, got -Inf",
    # argument names, apostrophes, shapes and intervals stay as they are
    "`None_x`: the model's classes, shape (7,), in (0, 1)" =
      "`None_x`: the model's classes, shape (7,), in (0, 1)",
    "`dist` must be 'inf' or 'kl_logits'" = "`dist` must be \"inf\" or \"kl_logits\"",
    "version 1.05 and 2.0e-3" = "version 1.05 and 2.0e-3",
    "`shape` must be a non-empty sequence of positive whole numbers, got (0, 2)" =
      "`shape` must be a non-empty vector of positive whole numbers, got c(0, 2)",
    "`data` must be a dict or a pair" = "`data` must be a named list or a pair",
    "classes ['a', 'b', ...]" = "classes c(\"a\", \"b\", ...)"
  )
  for (python in names(cases)) expect_identical(r_words(python), cases[[python]])
})

test_that("the core's messages reach R in R's words", {
  skip_if_no_python()
  expect_error(d4_batch_norm2d(2, momentum = 5), "or NULL, got 5$", class = "equivariance_value_error")
  expect_error(c4_conv2d(2, 3, 3, stride = NULL), "`stride` must be a positive whole number, got NULL$")
  expect_error(c4_group_pool("median"), "`mode` must be \"max\" or \"mean\", got \"median\"$")
  expect_error(c4_group_pool(c("max", "median")), "got c\\(\"max\", \"median\"\\)$")
  expect_error(check_equivariance(c4_cnn(), array(0, c(1, 1, 9, 9)), output = c("a", "b")),
    "got c\\(\"a\", \"b\"\\)$", class = "equivariance_type_error")
  expect_error(group_map(2, 4, method = "fast"), "one of \"exact\", \"sketch\", got \"fast\"$")
  torch <- reticulate::import("torch")
  model <- simple_cnn()
  err <- expect_error(predict(model, torch$ones(c(1L, 1L, 28L, 28L), dtype = torch$bool)),
    class = "equivariance_error")
  expect_no_match(conditionMessage(err), "torch\\.bool|None|True|False|NoneType")
  expect_match(conditionMessage(err), "logical")
  for (bad in list(NULL, TRUE)) {
    err <- tryCatch(fit_model(model, list(array(0, c(2, 1, 28, 28)), c(1, 2)), verbose = FALSE,
      callbacks = list(bad, "f")), equivariance_error = function(e) e)
    expect_s3_class(err, "equivariance_error")
    expect_no_match(conditionMessage(err), "\\bNone\\b|\\bTrue\\b|\\['|NoneType")
  }
})

test_that("labels are reported from 1 to an R caller, from 0 to a Python one", {
  skip_if_no_python()
  model <- simple_cnn() # 10 classes
  x <- array(runif(11 * 28 * 28), c(11, 1, 28, 28))
  err <- expect_error(fit_model(model, list(x, 1:11), verbose = FALSE), class = "equivariance_value_error")
  expect_identical(conditionMessage(err),
    "`data`: labels must be classes 1 to 10 (the model returns 10 logits), got labels from 1 to 11")
  err <- expect_error(fit_model(model, list(x, rep(1, 11)), verbose = FALSE,
    validation_data = list(x, c(1:10, 12))), class = "equivariance_value_error")
  expect_match(conditionMessage(err), "got labels from 1 to 12$")
  # a Python caller, outside call_py(), keeps Python's count
  eq <- reticulate::import("equivariance")
  np <- reticulate::import("numpy", convert = FALSE)
  labels <- torch()$tensor(reticulate::np_array(0:10, dtype = "int64"))
  msg <- tryCatch(eq$fit(model, reticulate::tuple(as_tensor(x), labels), verbose = FALSE),
    error = function(e) conditionMessage(e))
  expect_match(msg, "from 0 to 9 .*got labels from 0 to 10")
  # and the R count does not outlive the R call
  expect_identical(reticulate::import("equivariance._validation")$LABEL_BASE$get(), 0L)
})

test_that("ranges and allowed values are the core's rules, stated once, for C4 and D4 alike", {
  skip_if_no_python()
  for (wrapper in list(c4_conv2d, d4_conv2d)) {
    expect_error(wrapper(1, 2, 3, stride = 0), "^`stride` must be a positive whole number, got 0$",
      class = "equivariance_value_error")
    expect_error(wrapper(1, 2, 3, padding = -1), "^`padding` must be a non-negative whole number, got -1$")
  }
  for (wrapper in list(c4_batch_norm2d, d4_batch_norm2d)) {
    expect_error(wrapper(2, momentum = 5), "^`momentum` must be a number in \\[0, 1\\] or NULL, got 5$")
  }
  for (wrapper in list(c4_group_pool, d4_group_pool)) {
    expect_error(wrapper("median"), "^`mode` must be \"max\" or \"mean\", got \"median\"$")
  }
  expect_error(layer_map(c(0, 2)), "^`normalized_shape` must be a non-empty vector of positive whole numbers, got c\\(0, 2\\)$")
  expect_error(predict(simple_cnn(), array(0, c(1, 1, 28, 28)), batch_size = 0), "^`batch_size` must be a positive whole number")
  expect_error(fashion_mnist("val", root = "subset"), "^`split` must be \"train\" or \"test\", got \"val\"$")
})

test_that("worker processes report labels from 1 to an R caller too", {
  skip_if_no_python()
  x <- array(runif(8 * 28 * 28), c(8, 1, 28, 28))
  err <- expect_error(fit_model(simple_cnn(), list(x, rep(c(1, 11), 4)), workers = 2,
    batch_size = 2, verbose = FALSE), class = "equivariance_value_error")
  expect_match(conditionMessage(err),
    "`data`: labels must be classes 1 to 10 \\(the model returns 10 logits\\), got labels from 1 to 11$")
  # the variable that told the workers is gone afterwards
  expect_null(reticulate::import("os")$environ$get("EQUIVARIANCE_LABEL_BASE"))
})
