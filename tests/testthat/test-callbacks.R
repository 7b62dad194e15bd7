test_that("metrics: names and R functions, on training and validation data", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 64, root = "subset")
  seen <- list()
  mine <- function(logits, labels) {
    seen[[length(seen) + 1]] <<- list(dim = dim(logits), labels = labels)
    mean(max.col(logits, ties.method = "first") == labels)
  }
  h <- fit_model(tiny_model(), train, epochs = 2, batch_size = 16, verbose = FALSE,
    validation_data = 0.25, seed = 1, metrics = list("top_3", "macro_f1", mine = mine))
  expect_equal(names(h$epochs), c(
    "epoch", "loss", "reg", "accuracy", "top_3", "macro_f1", "mine", "val_loss",
    "val_accuracy", "val_top_3", "val_macro_f1", "val_mine", "lr", "seconds"
  ))
  # the R function saw an R matrix (one row per image) and labels from 1
  expect_equal(seen[[1]]$dim, c(48L, 10L))
  expect_true(all(seen[[1]]$labels >= 1 & seen[[1]]$labels <= 10))
  # its accuracy is the built-in one
  expect_equal(h$epochs$mine, h$epochs$accuracy)
  expect_equal(h$epochs$val_mine, h$epochs$val_accuracy)
  expect_true(all(h$epochs$top_3 >= h$epochs$accuracy))
  expect_error(fit_model(tiny_model(), train, metrics = list(function(l, y) 1), verbose = FALSE),
    "`metrics` must be names and named functions", class = "equivariance_value_error")
  expect_error(fit_model(tiny_model(), train, metrics = "top_k", verbose = FALSE),
    "\"top_3\"", class = "equivariance_value_error")
})

test_that("the history's columns with and without validation data", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 32, root = "subset")
  h <- fit_model(tiny_model(), train, epochs = 2, batch_size = 16, verbose = FALSE,
    metrics = "balanced_accuracy")
  expect_equal(names(as.data.frame(h)), c("epoch", "loss", "accuracy", "balanced_accuracy"))
  expect_false(any(grepl("^val_", names(h$epochs))))
  expect_true(is.na(h$best_epoch))
  out <- capture.output(print(h))
  expect_false(any(grepl("NA", out)))
  # validation without early stopping: the best epoch is named, not restored
  h <- fit_model(tiny_model(), train, epochs = 3, batch_size = 16, lr = 0.05, verbose = FALSE,
    validation_data = 0.5, seed = 2)
  expect_false(h$restored)
  expect_output(print(h), paste0("best epoch ", h$best_epoch, " by val_loss \\("))
  if (h$best_epoch < 3) expect_output(print(h), "not restored: the model has epoch 3's weights")
  path <- tempfile(fileext = ".png")
  grDevices::png(path)
  plot(h)
  grDevices::dev.off()
  expect_gt(file.size(path), 0)
  expect_equal(equivariance:::epoch_ticks(1:3), 1:3)
  expect_true(all(equivariance:::epoch_ticks(1:2) %% 1 == 0))
})

test_that("callback_checkpoint() saves the best model, callback_csv_logger() the epochs", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 48, root = "subset")
  dir <- tempfile()
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE), add = TRUE)
  h <- fit_model(tiny_model(), train, epochs = 3, batch_size = 16, verbose = FALSE,
    validation_data = 0.25, seed = 1,
    callbacks = list(
      callback_checkpoint(file.path(dir, "best.pt")),
      callback_csv_logger(file.path(dir, "log.csv"))
    ))
  expect_true(file.exists(file.path(dir, "best.pt")))
  model <- load_model(file.path(dir, "best.pt"), model = tiny_model(2))
  expect_s3_class(model, "torch.nn.modules.module.Module")
  log <- utils::read.csv(file.path(dir, "log.csv"))
  expect_equal(log$epoch, 1:3)
  expect_equal(log$val_loss, h$epochs$val_loss)
  expect_error(callback_checkpoint(file.path(dir, "nowhere", "m.pt")), "`path` is in a folder that does not exist")
  expect_error(fit_model(tiny_model(), train, verbose = FALSE,
    callbacks = list(callback_checkpoint(file.path(dir, "m.pt")))),
    "`checkpoint` needs `validation_data`", class = "equivariance_value_error")
})

test_that("callback_lr_schedule() changes the learning rate the optimizer uses", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 32, root = "subset")
  rates <- numeric()
  opt <- NULL
  model <- tiny_model()
  torch_ <- torch()
  opt <- torch_$optim$Adam(model$parameters(), lr = 0.01)
  h <- fit_model(model, train, epochs = 3, batch_size = 16, verbose = FALSE, optimizer = opt,
    callbacks = list(
      callback_lr_schedule(function(epoch) 0.01 / epoch),
      callback_lambda(on_step_end = function(s) {
        rates[length(rates) + 1] <<- opt$param_groups[[1]]$lr
      })
    ))
  expect_equal(h$epochs$lr, 0.01 / 1:3)
  expect_equal(rates, rep(0.01 / 1:3, each = 2))
  expect_true("lr" %in% names(as.data.frame(h)))
  h <- fit_model(tiny_model(), train, epochs = 3, batch_size = 16, lr = 0.01, verbose = FALSE,
    callbacks = list(callback_lr_schedule("cosine")))
  expect_equal(h$epochs$lr, 0.01 * (1 + cos(pi * (0:2) / 3)) / 2)
  expect_error(callback_lr_schedule("step"), "`schedule` must be \"plateau\", \"cosine\"")
})

test_that("callback_early_stopping() and callback_lambda() act on the training", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 32, root = "subset")
  steps <- 0
  h <- fit_model(tiny_model(), train, epochs = 4, batch_size = 16, verbose = FALSE,
    validation_data = 0.5, seed = 1,
    callbacks = list(
      callback_early_stopping(monitor = "val_accuracy", patience = NULL),
      callback_lambda(
        on_step_end = function(s) steps <<- steps + 1,
        on_epoch_end = function(f) f$epoch < 3
      )
    ))
  expect_equal(nrow(h$epochs), 3)
  expect_equal(steps, 3)
  expect_true(h$stopped_early && h$restored)
  expect_equal(h$monitor, "val_accuracy")
  expect_equal(h$epochs$val_accuracy[h$best_epoch], max(h$epochs$val_accuracy))
})

test_that("the progress line keeps its ETA within 80 columns", {
  skip_if_no_python()
  event <- list(epoch = 10, step = 123, steps = 470, seconds = 12.5, loss = 0.123456,
    reg = 0.0123)
  line <- equivariance:::progress_line(event, 10, width = 79, prefix = "model 3/6 ",
    overall = 3725)
  expect_lte(nchar(line), 79)
  expect_match(line, "ETA 35s, all 1h02m")
  short <- equivariance:::progress_line(event, 10, width = 60)
  expect_match(short, "ETA 35s")
  expect_lte(nchar(short), 60)
})

test_that("rotation_benchmark(): one table, model k of n, and a plot of coinciding rows", {
  skip_if_no_python()
  msgs <- character()
  withCallingHandlers(
    out <- capture.output(res <- rotation_benchmark(c("SimpleCNN", "C4CNN"), epochs = 1,
      root = "subset", limit = 64, test_limit = 40, verbose = TRUE)),
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  expect_equal(sum(grepl("<rotation_benchmark>", out)), 1)
  expect_false(any(grepl("acc@0", out))) # Python's table is not printed
  expect_true(any(grepl("model 2 of 2: C4CNN", msgs)))
  # two rows with the same accuracies still draw, with a chance line and a subtitle
  same <- res
  same[2, grep("^accuracy_", names(same))] <- same[1, grep("^accuracy_", names(same))]
  path <- tempfile(fileext = ".png")
  grDevices::png(path)
  expect_silent(plot(same))
  grDevices::dev.off()
  expect_gt(file.size(path), 0)
  expect_match(equivariance:::benchmark_subtitle(attr(res, "settings")),
    "^64 training / 40 test images, 1 epoch, seed 0$")
})
