# predict() on torch modules: types, class names, inputs, modes and bad input.

tiny_c4 <- function() {
  torch()$manual_seed(1L)
  c4_cnn(widths = c(2, 2, 2))
}

images <- function(n = 4, side = 9, channels = NULL) {
  set.seed(1)
  array(runif(n * side * side * max(1, channels)), c(n, channels, side, side))
}

test_that("the three types agree with each other and with the model", {
  skip_if_no_python()
  model <- tiny_c4()
  x <- images(channels = 1)
  logits <- predict(model, x, type = "logits")
  prob <- predict(model, x, type = "prob")
  cls <- predict(model, x)
  expect_true(is.matrix(logits) && is.matrix(prob))
  expect_equal(dim(prob), c(4, 10))
  expect_equal(rowSums(prob), rep(1, 4), tolerance = 1e-6)
  expect_equal(prob, exp(logits) / rowSums(exp(logits)), tolerance = 1e-5)
  expect_type(cls, "integer")
  expect_equal(cls, apply(logits, 1, which.max))
  model$eval()
  expect_equal(logits, as.array(model(as_tensor(x))), tolerance = 1e-6)
})

test_that("a model with class names gives a factor and named columns", {
  skip_if_no_python()
  model <- tiny_c4()
  labels <- paste0("c", 0:9)
  model$class_names <- labels
  x <- images()
  cls <- predict(model, x)
  expect_s3_class(cls, "factor")
  expect_equal(levels(cls), labels)
  prob <- predict(model, x, type = "prob")
  expect_equal(colnames(prob), labels)
  expect_equal(as.character(cls), labels[apply(prob, 1, which.max)])
})

test_that("(N, H, W) arrays, integer arrays and tensors give the same result", {
  skip_if_no_python()
  model <- tiny_c4()
  x <- images()
  four <- array(x, c(4, 1, 9, 9))
  expected <- predict(model, four, type = "logits")
  expect_equal(predict(model, x, type = "logits"), expected)
  expect_equal(predict(model, as_tensor(four), type = "logits"), expected, tolerance = 1e-6)
  ints <- array(as.integer(round(x * 10)), dim(x))
  expect_equal(predict(model, ints, type = "logits"),
               predict(model, ints * 1.0, type = "logits"))
  expect_equal(predict(model, x, type = "logits", batch_size = 1), expected, tolerance = 1e-5)
})

test_that("a data set from fashion_mnist() gives its images' predictions", {
  skip_if_no_python()
  model <- tiny_c4()
  test <- fashion_mnist("test", limit = 3, root = "subset")
  expect_equal(predict(model, test, type = "prob"), predict(model, as.array(test), type = "prob"),
               tolerance = 1e-6)
})

test_that("predict leaves every module's mode as it was", {
  skip_if_no_python()
  model <- tiny_c4()
  model$train()
  bn <- reticulate::py_get_item(model$features, 1L)
  bn$eval()
  predict(model, images())
  expect_true(model$training)
  expect_false(bn$training)
  model$eval()
  predict(model, images())
  expect_false(model$training)
})

test_that("bad input names the argument", {
  skip_if_no_python()
  model <- tiny_c4()
  x <- images()
  expect_error(predict(model, x, type = "probs"), "`type` must be one of", class = "equivariance_value_error")
  expect_error(predict(model, x, batch_size = 0), "`batch_size`", class = "equivariance_value_error")
  bad <- x
  bad[2] <- NA
  expect_error(predict(model, bad), "`x` must hold finite numbers", class = "equivariance_value_error")
  bad_int <- array(1L, c(2, 9, 9))
  bad_int[3] <- NA
  expect_error(predict(model, bad_int), "`x` must hold finite numbers", class = "equivariance_value_error")
  expect_error(predict(model, array("a", c(2, 9, 9))), "`x` must be images", class = "equivariance_type_error")
  expect_error(predict(model, array(TRUE, c(2, 9, 9))), "`x` must hold real numbers", class = "equivariance_type_error")
  expect_error(predict(model, array(0, c(2, 9, 9, 1))), "aperm\\(x, c\\(1, 4, 2, 3\\)\\)", class = "equivariance_value_error")
  expect_error(predict(model, 1:10), "`x` must be images of shape", class = "equivariance_value_error")
  expect_error(predict(model, newdata = x), "^`predict\\(\\)` has no argument `newdata`\\. Its arguments: `object`, `x`",
    class = "equivariance_argument_error")
  expect_error(predict(model, x, btach_size = 2), "^`predict\\(\\)` has no argument `btach_size`; did you mean `batch_size`\\?$",
    class = "equivariance_argument_error")
})

test_that("devices: the CPU, and CUDA only where it exists", {
  skip_if_no_python()
  model <- tiny_c4()
  x <- images()
  expected <- predict(model, x, type = "logits")
  expect_equal(predict(model, x, type = "logits", device = "cpu"), expected)
  if (torch()$cuda$is_available()) {
    expect_equal(predict(model, x, type = "logits", device = "cuda"), expected, tolerance = 1e-4)
  } else {
    expect_error(predict(model, x, device = "cuda"), "CUDA is not available.*\"auto\"",
                 class = "equivariance_value_error")
  }
  expect_error(predict(model, x, device = "gpu"), "`device` must be", class = "equivariance_value_error")
})
