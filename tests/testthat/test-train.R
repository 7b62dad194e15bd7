tiny_model <- function(seed = 1) {
  th <- torch()
  th$manual_seed(as.integer(seed))
  nn <- th$nn
  nn$Sequential(
    nn$Conv2d(1L, 4L, 3L, padding = 1L), nn$ReLU(), nn$MaxPool2d(4L),
    nn$Flatten(), nn$Linear(196L, 10L)
  )
}

test_that("fit_model() trains, returns the history and prints progress", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 256, root = "subset")
  model <- tiny_model()
  out <- capture.output(h <- fit_model(model, train, epochs = 4, batch_size = 32, lr = 1e-2, seed = 1))
  expect_s3_class(h, "equivariance_history")
  expect_equal(nrow(h$steps), 32)
  expect_equal(h$epochs$epoch, 1:4)
  expect_true(all(h$epochs$seconds > 0))
  expect_lt(h$epochs$loss[4], h$epochs$loss[1] - 0.1)
  expect_output(print(h), "32 steps")
  quiet <- capture.output(fit_model(tiny_model(), train, epochs = 1, verbose = FALSE))
  expect_length(quiet, 0)
})

test_that("fit_model() is reproducible with a seed and takes a regularizer", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 128, root = "subset")
  h1 <- fit_model(tiny_model(), train, batch_size = 64, seed = 2, verbose = FALSE)
  h2 <- fit_model(tiny_model(), train, batch_size = 64, seed = 2, verbose = FALSE)
  expect_equal(h1$steps$loss, h2$steps$loss)
  model <- tiny_model()
  reg <- equivariance_regularizer(model, c(1, 28, 28), list(list(transform_rot90(1), 0, 1)), n = 16)
  h <- fit_model(model, train, batch_size = 64, regularizer = reg, verbose = FALSE)
  expect_true(h$reused_outputs)
  expect_true(all(h$steps$reg > 0))
  # R arrays work too
  data <- list(images = as.array(train)[1:32, , , , drop = FALSE], labels = train$labels[1:32])
  expect_equal(nrow(fit_model(tiny_model(), data, batch_size = 16, verbose = FALSE)$steps), 2)
})

test_that("evaluate_rotations() returns one row per rotation", {
  skip_if_no_python()
  test <- fashion_mnist("test", limit = 100, root = "subset")
  res <- evaluate_rotations(tiny_model(), test)
  expect_s3_class(res, "data.frame")
  expect_equal(res$rotation, c(0, 90, 180, 270))
  expect_true(all(res$accuracy >= 0 & res$accuracy <= 1))
  expect_equal(res$n, rep(100L, 4))
  expect_equal(nrow(evaluate_rotations(tiny_model(), test, rotations = c(0, 2))), 2)
})

test_that("train_step() returns plain numbers", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 64, root = "subset")
  model <- tiny_model()
  opt <- torch()$optim$Adam(model$parameters(), lr = 1e-2)
  first <- train_step(model, opt, train$images, train$labels)
  for (i in 1:5) last <- train_step(model, opt, train$images, train$labels)
  expect_named(last, c("loss", "reg", "total"))
  expect_lt(last[["loss"]], first[["loss"]])
})

test_that("bad arguments are R errors naming the argument", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 32, root = "subset")
  model <- tiny_model()
  expect_error(fit_model(model, train, epochs = 0), "`epochs`")
  expect_error(fit_model(model, train, batch_size = 1.5), "`batch_size`")
  expect_error(fit_model(model, train, lr = -1), "`lr`")
  expect_error(fit_model(model, train, seed = "a"), "`seed`")
  expect_error(fit_model(model, train, verbose = NA), "`verbose`")
  expect_error(fit_model(model, train, regularizer = 3), "`regularizer`")
  expect_error(fit_model("model", train), "`model`")
  expect_error(fit_model(model, 1:3), "`data`")
  expect_error(fit_model(model, list(images = array(0, c(2, 1, 28, 28)), labels = c(0.5, 1))), "labels")
  expect_error(evaluate_rotations(model, train, rotations = c(0, 90)), "`rotations`")
  expect_error(evaluate_rotations(model, train, rotations = "a"), "`rotations`")
  opt <- torch()$optim$Adam(model$parameters())
  expect_error(train_step(model, "adam", train$images, train$labels), "`optimizer`")
  expect_error(train_step(model, opt, train$images, c(-1, 2)), "`y`")
})
