# Labels matched to the model's classes by name; inputs checked before the work.

test_that("a factor with its levels in another order is scored by name", {
  skip_if_no_python()
  test <- fashion_mnist("test", limit = 200, root = "subset")
  x <- as.array(test)
  model <- small_cnn()
  model$class_names <- levels(test$y)
  right <- evaluate_rotations(model, list(x, test$y), rotations = 0)
  shuffled <- factor(as.character(test$y), levels = rev(levels(test$y)))
  expect_equal(evaluate_rotations(model, list(x, shuffled), rotations = 0)$correct,
    right$correct)
  # the validation labels too: the accuracy reported is the true one
  h <- fit_model(model, list(x, test$y), epochs = 1, batch_size = 50, seed = 1,
    validation_data = list(x, shuffled), verbose = FALSE)
  true <- evaluate_rotations(model, list(x, test$y), rotations = 0)$accuracy
  expect_equal(as.data.frame(h)$val_accuracy, true)
})

test_that("a class the model does not know is an error naming the argument", {
  skip_if_no_python()
  test <- fashion_mnist("test", limit = 40, root = "subset")
  x <- as.array(test)
  model <- small_cnn()
  expect_error(fit_model(model, list(x, test$y), validation_data = list(x[1:8, , , , drop = FALSE],
    factor(letters[1:8])), verbose = FALSE),
    "`validation_data` has classes the model does not know: c\\(\"a\", \"b\"",
    class = "equivariance_value_error")
  model$class_names <- paste0("c", 1:10)
  expect_error(evaluate_rotations(model, test, rotations = 0),
    "`data` has classes the model does not know", class = "equivariance_value_error")
})

test_that("an NA level is not a class", {
  skip_if_no_python()
  x <- array(runif(4 * 28 * 28), c(4, 1, 28, 28))
  y <- factor(c("a", "b", NA, "a"), exclude = NULL)
  expect_error(fit_model(small_cnn(), list(x, y), verbose = FALSE),
    "`data\\[\\[2\\]\\]` must be a factor without an NA level")
})

test_that("evaluation refuses labels beyond the model's classes", {
  skip_if_no_python()
  test <- fashion_mnist("test", limit = 20, root = "subset")
  x <- as.array(test)
  expect_error(evaluate_rotations(small_cnn(), list(x, rep(11, 20)), rotations = 0),
    "`data`: labels must be classes 1 to 10 \\(the model returns 10 logits\\), got labels from 11 to 11$",
    class = "equivariance_value_error")
})

test_that("predict() refuses a model that is not a classifier", {
  skip_if_no_python()
  conv <- torch()$nn$Conv2d(1L, 3L, 3L, padding = 1L)
  expect_error(predict(conv, array(runif(2 * 8 * 8), c(2, 8, 8))),
    "logits of shape \\(N, num_classes\\) for N = 2 images, got shape \\(2, 3, 8, 8\\)",
    class = "equivariance_value_error")
})

test_that("callbacks of the wrong arity fail before training, naming the argument", {
  skip_if_no_python()
  x <- array(runif(4 * 28 * 28), c(4, 1, 28, 28))
  expect_error(fit_model(small_cnn(), list(x, c(1, 2, 1, 2)), callbacks = list(function() NULL),
    verbose = FALSE), "`callbacks` must be a function of 1 argument, got function\\(\\)",
    class = "equivariance_type_error")
  expect_error(callback_lambda(on_step_end = function(epoch, step) NULL),
    "`on_step_end` must be a function of 1 argument, got function\\(epoch, step\\)")
  expect_error(fit_model(small_cnn(), list(x, c(1, 2, 1, 2)), verbose = FALSE,
    metrics = list(m = function(logits) 1)), "`metrics` must be a function of 2 arguments")
  seen <- 0
  fit_model(small_cnn(), list(x, c(1, 2, 1, 2)), verbose = FALSE,
    callbacks = function(...) seen <<- seen + 1)
  expect_equal(seen, 1)
})
