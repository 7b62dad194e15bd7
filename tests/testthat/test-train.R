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

test_that("fit_model() applies `augment` to every training batch", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 32, root = "subset")
  plain <- fit_model(tiny_model(), train, batch_size = 16, seed = 3, verbose = FALSE)
  calls <- 0
  same <- fit_model(tiny_model(), train, batch_size = 16, seed = 3, verbose = FALSE,
    augment = function(x) {
      calls <<- calls + 1
      x
    })
  expect_equal(calls, 2) # once per step
  expect_equal(same$steps$loss, plain$steps$loss)
  # what the model sees changes: a transform of the package, an R function
  turned <- fit_model(tiny_model(), train, batch_size = 16, seed = 3, verbose = FALSE,
    augment = transform_rot90(1))
  expect_false(isTRUE(all.equal(turned$steps$loss, plain$steps$loss)))
  as_array <- fit_model(tiny_model(), train, batch_size = 16, seed = 3, verbose = FALSE,
    augment = function(x) as.array(x$flip(-1L)$numpy()))
  expect_false(isTRUE(all.equal(as_array$steps$loss, plain$steps$loss)))
  h <- fit_model(tiny_model(), train, batch_size = 16, seed = 3, verbose = FALSE,
    augment = transform_random_rot90())
  expect_equal(nrow(h$steps), 2)
  expect_error(
    fit_model(tiny_model(), train, augment = 5, verbose = FALSE),
    "`augment` must be None, a transform", class = "equivariance_type_error"
  )
  model <- tiny_model()
  opt <- torch()$optim$Adam(model$parameters(), lr = 1e-2)
  out <- train_step(model, opt, train$images, train$labels, augment = transform_rot90(2))
  expect_true(is.finite(out[["loss"]]))
})

test_that("non-finite data and losses stop training with a named error", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 16, root = "subset")
  images <- as.array(train)
  images[3, 1, 5, 5] <- Inf
  expect_error(
    fit_model(tiny_model(), list(images = images, labels = train$labels), verbose = FALSE),
    "`data\\$images`"
  )
  # a tensor goes to Python as it is: the step that meets the NaN stops the training
  x <- train$images$clone()
  x[0L]$fill_(NaN)
  model <- tiny_model()
  expect_error(
    fit_model(model, list(images = x, labels = train$labels), batch_size = 8, verbose = FALSE),
    "epoch 1, step [12]: .*input batch held", class = "equivariance_value_error"
  )
  finite <- vapply(reticulate::iterate(model$parameters()), function(p) {
    p$isfinite()$all()$item()
  }, logical(1))
  expect_true(all(finite))
  expect_error(
    evaluate_rotations(model, list(images = x, labels = train$labels)),
    "`data` must hold finite numbers only", class = "equivariance_value_error"
  )
})

test_that("fit_model() leaves frozen layers frozen and names bad arguments", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 16, root = "subset")
  th <- torch()
  th$manual_seed(1L)
  model <- th$nn$Sequential(
    th$nn$Conv2d(1L, 4L, 3L), th$nn$BatchNorm2d(4L), th$nn$ReLU(),
    th$nn$AdaptiveAvgPool2d(1L), th$nn$Flatten(), th$nn$Linear(4L, 10L)
  )
  bn <- model[1]
  bn$eval()
  before <- as.numeric(bn$running_mean$numpy())
  fit_model(model, train, batch_size = 8, verbose = FALSE)
  expect_equal(as.numeric(bn$running_mean$numpy()), before)
  expect_false(bn$training)
  expect_true(model$training)
  expect_error(
    evaluate_rotations(model, train, rotations = 45),
    "`rotations` must be .*quarter turns 0, 1, 2 or 3", class = "equivariance_value_error"
  )
  expect_error(fit_model(model, train, seed = 2^70, verbose = FALSE), "`seed`")
  expect_error(fit_model(model, train, callback = 5, verbose = FALSE), "`callback`",
    class = "equivariance_type_error")
})
