test_that("fit_model() trains, returns the history and prints progress", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 256, root = "subset")
  model <- tiny_model()
  msgs <- capture_messages(
    out <- capture.output(h <- fit_model(model, train, epochs = 4, batch_size = 32, lr = 1e-2, seed = 1))
  )
  expect_match(paste(msgs, collapse = ""), "epoch 4/4: loss [0-9.]+, accuracy [0-9.]+ \\([0-9.]+ s\\)")
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
  data <- list(images = as.array(train)[1:32, , , , drop = FALSE], labels = train$y[1:32])
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
    "`augment` must be NULL, a transform", class = "equivariance_type_error"
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
    fit_model(tiny_model(), list(images = images, labels = train$y), verbose = FALSE),
    "`data\\$images`"
  )
  # a tensor goes to Python as it is: the step that meets the NaN stops the training
  x <- train$images$clone()
  x[0L]$fill_(NaN)
  model <- tiny_model()
  expect_error(
    fit_model(model, list(images = x, labels = train$y), batch_size = 8, verbose = FALSE),
    "epoch 1, step [12]: .*input batch held", class = "equivariance_value_error"
  )
  finite <- vapply(reticulate::iterate(model$parameters()), function(p) {
    p$isfinite()$all()$item()
  }, logical(1))
  expect_true(all(finite))
  expect_error(
    evaluate_rotations(model, list(images = x, labels = train$y)),
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
  expect_error(fit_model(model, train, callbacks = list(5), verbose = FALSE), "`callbacks`",
    class = "equivariance_type_error")
})


# -- own data, validation, early stopping, callbacks, devices, seeds --

weights <- function(model) {
  lapply(reticulate::iterate(model$parameters()), function(p) p$detach()$numpy())
}

test_that("own R arrays with a factor: its levels become the class names", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 32, root = "subset")
  x <- as.array(train)[, 1, , ] # (N, H, W): one channel
  y <- factor(as.character(train$y), levels = c(train$classes[-10], "Ankle boot"))
  y <- droplevels(y[train$labels != 10])
  y <- factor(y, levels = c(levels(y), "Ankle boot")) # an unused level keeps its class
  x <- x[train$labels != 10, , ]
  model <- tiny_model()
  h <- fit_model(model, list(x, y), batch_size = 16, verbose = FALSE)
  expect_equal(unlist(model$class_names), levels(y))
  pred <- predict(model, x[1:4, , ])
  expect_s3_class(pred, "factor")
  expect_equal(levels(pred), levels(y))
  # 1-based integers, named x/y or images/labels: no class names
  for (data in list(
    list(x = x, y = as.integer(y)),
    list(images = array(x, c(dim(x)[1], 1, 28, 28)), labels = as.numeric(y))
  )) {
    model <- tiny_model()
    h <- fit_model(model, data, batch_size = 64, verbose = FALSE)
    expect_equal(nrow(h$steps), 1)
    expect_false(reticulate::py_has_attr(model, "class_names"))
    expect_type(predict(model, x[1:2, , ]), "integer")
  }
  # 1-based labels and a factor train the same model
  a <- tiny_model()
  b <- tiny_model()
  fit_model(a, list(x, y), batch_size = 8, seed = 4, verbose = FALSE)
  fit_model(b, list(x, as.integer(y)), batch_size = 8, seed = 4, verbose = FALSE)
  expect_equal(weights(a), weights(b))
  expect_equal(evaluate_rotations(a, list(x, y), rotations = 0)$accuracy,
    evaluate_rotations(b, list(x, as.integer(y)), rotations = 0)$accuracy)
})

test_that("bad images and labels are errors naming the argument and the shapes", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 8, root = "subset")
  x <- as.array(train)
  m <- c4_cnn(widths = c(2, 2, 2))
  expect_error(fit_model(m, list(x, train$labels - 1L), verbose = FALSE),
    "`data\\[\\[2\\]\\]` must be class numbers from 1 .*got 0 at position .*Add 1",
    class = "equivariance_value_error")
  expect_error(fit_model(m, list(aperm(x, c(1, 3, 4, 2)), train$y), verbose = FALSE),
    "`data` must be images of shape \\(N, 1, H, W\\) or \\(N, H, W\\), got shape \\(8, 28, 28, 1\\).*aperm\\(x, c\\(1, 4, 2, 3\\)\\)",
    class = "equivariance_value_error")
  expect_error(fit_model(m, list(array(0, c(8, 3, 28, 28)), train$y), verbose = FALSE),
    "got shape \\(8, 3, 28, 28\\)", class = "equivariance_value_error")
  expect_error(fit_model(m, list(array(0, c(8, 28)), train$y), verbose = FALSE),
    "`data` must be images of shape .*got shape \\(8, 28\\)", class = "equivariance_value_error")
  expect_error(fit_model(m, list(x, train$y[1:7]), verbose = FALSE),
    "`data`: labels must be a vector with one label per image, got shape \\(7,\\) for 8 images",
    class = "equivariance_value_error")
  expect_error(fit_model(m, list(x, c(1:7, 11)), verbose = FALSE),
    "`data`: labels must be classes 1 to 10 \\(the model returns 10 logits\\), got labels from 1 to 11$",
    class = "equivariance_value_error")
  expect_error(fit_model(m, list(x, c(1:7, NA)), verbose = FALSE),
    "`data\\[\\[2\\]\\]` must be .* without NA, got NA at position 8")
  expect_error(fit_model(m, list(x = x, y = factor(c(letters[1:7], NA))), verbose = FALSE),
    "`data\\$y` must be .* without NA, got NA at position 8")
  expect_error(fit_model(m, list(x, factor(letters[1:8])), verbose = FALSE),
    "`class_names` .* has 8 names but the model returns 10 logits")
  expect_error(fit_model(m, list(x, as.character(1:8)), verbose = FALSE),
    "`data\\[\\[2\\]\\]` must be class numbers from 1", class = "equivariance_type_error")
  expect_error(fit_model(m, list(a = x, b = train$y), verbose = FALSE),
    "`data` must be .*list\\(x, y\\).*got a list named `a`, `b`")
  expect_error(fit_model(m, list(x, train$y, 1), verbose = FALSE), "`data` must be")
  expect_error(fit_model(m, list(x, train$y), validation_data = list(x, factor(letters[1:8])),
    verbose = FALSE), "`validation_data` has classes the model does not know")
})

test_that("validation: a fraction held out, one row per epoch in as.data.frame()", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 40, root = "subset")
  h <- fit_model(tiny_model(), train, epochs = 2, batch_size = 30, seed = 1,
    validation_data = 0.25, verbose = FALSE)
  expect_equal(nrow(h$steps), 2) # 30 training images: one step per epoch
  df <- as.data.frame(h)
  expect_equal(names(df), c("epoch", "loss", "accuracy", "val_loss", "val_accuracy"))
  expect_equal(df$epoch, 1:2)
  expect_true(all(df$val_accuracy >= 0 & df$val_accuracy <= 1))
  again <- fit_model(tiny_model(), train, epochs = 2, batch_size = 30, seed = 1,
    validation_data = 0.25, verbose = FALSE)
  expect_equal(as.data.frame(again), df)
  expect_output(print(h), "val_loss")
  # a pair, and the regularizer's column
  model <- tiny_model()
  reg <- equivariance_regularizer(model, c(1, 28, 28), list(list(transform_rot90(1), 0, 1)), n = 4)
  h <- fit_model(model, train, regularizer = reg, verbose = FALSE,
    validation_data = list(as.array(train)[1:8, , , ], train$y[1:8]))
  expect_equal(names(as.data.frame(h)), c("epoch", "loss", "reg", "accuracy", "val_loss", "val_accuracy"))
  path <- tempfile(fileext = ".png")
  grDevices::png(path)
  plot(h)
  grDevices::dev.off()
  expect_gt(file.size(path), 0)
  expect_error(fit_model(tiny_model(), train, validation_data = 1.5, verbose = FALSE),
    "`validation_data` must be data .* or a fraction in \\(0, 1\\)")
})

test_that("early stopping stops and restores the best weights", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 20, root = "subset")
  x <- as.array(train)
  set.seed(1)
  wrong <- sample(train$y) # validation labels that training cannot fit for long
  model <- tiny_model()
  seen <- list()
  h <- fit_model(model, list(x, train$y), epochs = 30, batch_size = 20, lr = 0.5, seed = 0,
    validation_data = list(x, wrong), patience = 2, verbose = FALSE,
    callbacks = list(function(f) seen[[f$epoch]] <<- weights(model)))
  best <- which.min(h$epochs$val_loss)
  expect_true(h$stopped_early)
  expect_equal(h$best_epoch, best)
  expect_equal(nrow(h$epochs), best + 2)
  expect_equal(weights(model), seen[[best]])
  expect_error(fit_model(tiny_model(), train, patience = 2, verbose = FALSE),
    "`patience` needs `validation_data`", class = "equivariance_value_error")
  expect_error(callback_early_stopping(restore_best = NA), "`restore_best`")
  expect_true(h$restored)
  expect_output(print(h), paste0("best epoch ", best, " by val_loss \\(weights restored\\)"))
})

test_that("callbacks receive the epoch's figures; FALSE stops training", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 16, root = "subset")
  got <- list()
  h <- fit_model(tiny_model(), train, epochs = 5, batch_size = 8, verbose = FALSE,
    validation_data = 0.5, seed = 1,
    callbacks = list(function(f) got[[length(got) + 1]] <<- f, function(f) f$epoch < 2))
  expect_equal(nrow(h$epochs), 2)
  expect_true(h$stopped_early)
  expect_setequal(names(got[[1]]), c("epoch", "loss", "reg", "accuracy", "seconds", "lr",
    "val_loss", "val_accuracy"))
  expect_equal(got[[2]]$val_loss, h$epochs$val_loss[2])
  # one function alone; a value other than FALSE goes on
  h <- fit_model(tiny_model(), train, epochs = 2, verbose = FALSE, callbacks = function(f) 1)
  expect_equal(nrow(h$epochs), 2)
  expect_error(fit_model(tiny_model(), train, callbacks = list(1), verbose = FALSE),
    "`callbacks` must be NULL or a list of callbacks", class = "equivariance_type_error")
})

test_that("the progress bar shows epochs and losses; verbose = FALSE silences it", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 16, root = "subset")
  withr_opts <- options(cli.progress_show_after = 0, cli.dynamic = FALSE)
  on.exit(options(withr_opts), add = TRUE)
  msgs <- character()
  withCallingHandlers(
    out <- capture.output(fit_model(tiny_model(), train, epochs = 2, batch_size = 8,
      validation_data = 0.5, seed = 1)),
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  text <- paste(msgs, collapse = "")
  expect_match(text, "epoch 1/2")
  expect_match(text, "epoch 2/2: loss [0-9.]+, accuracy [0-9.]+, val_loss [0-9.]+, val_accuracy")
  expect_match(text, "ETA")
  expect_length(out, 0) # nothing from Python's own progress line
  expect_silent(fit_model(tiny_model(), train, epochs = 2, verbose = FALSE))
})

test_that("devices: the CPU, and CUDA only where it exists", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 8, root = "subset")
  model <- tiny_model()
  fit_model(model, train, device = "cpu", verbose = FALSE)
  expect_equal(model$parameters()$`__next__`()$device$type, "cpu")
  expect_equal(evaluate_rotations(model, train, rotations = 0, device = "cpu")$n, 8L)
  if (torch()$cuda$is_available()) {
    fit_model(model, train, device = "cuda", verbose = FALSE)
    expect_equal(model$parameters()$`__next__`()$device$type, "cuda")
    expect_equal(evaluate_rotations(model, train, rotations = 0, device = "cuda")$n, 8L)
  } else {
    expect_error(fit_model(model, train, device = "cuda", verbose = FALSE),
      "`device` is \"cuda\" but CUDA is not available.*\"auto\"", class = "equivariance_value_error")
    expect_error(evaluate_rotations(model, train, device = "cuda"), "CUDA is not available")
  }
  expect_error(fit_model(model, train, device = "gpu", verbose = FALSE), "`device` must be")
})

test_that("set_seed() makes two fit_model() runs identical", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 16, root = "subset")
  run <- function() {
    set_seed(7)
    model <- c4_cnn(widths = c(2, 2, 2))
    fit_model(model, train, batch_size = 8, validation_data = 0.25, verbose = FALSE,
      augment = transform_random_rot90())
    weights(model)
  }
  expect_equal(run(), run())
  set_seed(7)
  a <- reticulate::import("numpy")$random$rand(2L)
  set_seed(7)
  expect_equal(reticulate::import("numpy")$random$rand(2L), a)
  expect_error(set_seed(-1), "`seed`")
  expect_error(set_seed(NULL), "`seed` must be a whole number")
})

test_that("summary() lists layers, output shapes and parameter counts", {
  skip_if_no_python()
  model <- c4_cnn(widths = c(2, 2, 2))
  s <- summary(model, input_shape = c(1, 28, 28))
  expect_s3_class(s, "equivariance_model_summary")
  expect_equal(s$layers$output_shape[1], "(8, 28, 28)")
  expect_equal(s$total, sum(s$layers$parameters))
  expect_equal(s$total, sum(vapply(weights(model), length, integer(1))))
  expect_output(print(s), "total parameters: ")
  expect_true(all(is.na(summary(simple_cnn())$layers$output_shape)))
  expect_error(summary(model, input_shape = c(0, 28)), "`input_shape`")
  expect_error(summary(model, inputshape = 1), "`summary\\(\\)` has no argument `inputshape`; did you mean `input_shape`")
})
