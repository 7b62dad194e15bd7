#' Callbacks for fit_model(): checkpoints, a CSV log, learning-rate schedules,
#' early stopping
#'
#' Objects to pass in `fit_model(callbacks = list(...))`, beside plain R functions
#' (each called after every epoch with a list of its figures; `FALSE` stops the
#' training). They are the core's callback objects, run in Python at each step or
#' epoch; files are written by R's process (rank 0 with `workers > 1`).
#'
#' * `callback_checkpoint()` saves the model with [save_model()] whenever the
#'   figure `monitor` improves (`"{epoch}"` in `path` keeps one file per
#'   improvement); [load_model()] reads it back.
#' * `callback_csv_logger()` writes each epoch's figures as a row of a CSV file
#'   (the file is replaced at the first epoch).
#' * `callback_lr_schedule()` changes the learning rate between epochs:
#'   `"plateau"` multiplies it by `factor` when `monitor` has not improved for
#'   `patience` epochs; `"cosine"` lowers it along half a cosine from the
#'   optimizer's rate at epoch 1 to `min_lr` after the last epoch; an R function of
#'   the epoch (from 1) returns the rate of that epoch. The history's `lr` column
#'   records the rate of every epoch.
#' * `callback_early_stopping()` stops when `monitor` has not improved for
#'   `patience` epochs and puts back the best epoch's weights; `fit_model(patience
#'   = p)` is its short form with `monitor = "val_loss"`. The history's
#'   `best_epoch` and `restored` say what it did.
#' * `callback_lambda()` makes a callback of R functions, each called with one
#'   list: `on_train_begin` (`epochs`, `steps`), `on_epoch_begin` (`epoch`,
#'   `epochs`), `on_step_end` (`epoch`, `step`, `steps`, `loss`, `reg`),
#'   `on_epoch_end` (the epoch's figures) and `on_train_end` (the last epoch's
#'   figures); any of them returning `FALSE` stops the training after the epoch.
#'
#' The figures an epoch has: `loss`, `reg`, `accuracy`, the `metrics` of
#' [fit_model()], with validation data `val_loss`, `val_accuracy` and the `val_`
#' metrics, and `lr`, `seconds`. A `monitor` that will not be measured (a `val_`
#' figure without validation data) is an error before the first epoch.
#'
#' @param path The file to write (its folder must exist).
#' @param monitor The figure watched: `"val_loss"`, `"val_accuracy"`, `"loss"`,
#'   `"accuracy"`, a metric such as `"val_macro_f1"`. For
#'   `callback_lr_schedule("plateau")`, `NULL` watches `"val_loss"` with validation
#'   data and `"loss"` without.
#' @param mode `"auto"` (larger is better for accuracies, F1 and top-k, smaller
#'   for the rest), `"min"` or `"max"`.
#' @param schedule `"plateau"`, `"cosine"` or a function of the epoch returning a
#'   positive learning rate.
#' @param factor For `"plateau"`: the factor in (0, 1) the rate is multiplied by.
#' @param patience Epochs without improvement before a reduction of the rate
#'   (`callback_lr_schedule()`) or before stopping (`callback_early_stopping()`;
#'   `NULL`: never stop, only keep the best weights).
#' @param min_lr The lowest rate of `"plateau"` and `"cosine"`.
#' @param restore_best Put the weights of the best epoch back at the end.
#' @param min_delta The least change of `monitor` that counts as an improvement.
#' @param on_train_begin,on_epoch_begin,on_step_end,on_epoch_end,on_train_end
#'   `NULL` or an R function of one list (see above).
#' @return A callback object for `fit_model(callbacks = )`.
#' @seealso [fit_model()], [save_model()]
#' @name callbacks
#' @examples
#' if (equivariance_available()) {
#'   train <- fashion_mnist("train", limit = 128, root = "subset")
#'   dir <- tempfile()
#'   dir.create(dir)
#'   history <- fit_model(simple_cnn(), train, epochs = 3, batch_size = 32,
#'     validation_data = 0.25, metrics = "macro_f1", verbose = FALSE,
#'     callbacks = list(
#'       callback_checkpoint(file.path(dir, "best.pt")),
#'       callback_csv_logger(file.path(dir, "log.csv")),
#'       callback_lr_schedule("cosine"),
#'       callback_early_stopping(monitor = "val_accuracy", patience = 2),
#'       callback_lambda(on_epoch_end = function(f) cat("epoch", f$epoch, "\n"))
#'     ))
#'   history$epochs$lr
#'   read.csv(file.path(dir, "log.csv"))
#'   best <- load_model(file.path(dir, "best.pt"))
#' }
NULL

#' @rdname callbacks
#' @export
callback_checkpoint <- function(path, monitor = "val_loss", mode = "auto") {
  call_py(core()$checkpoint(path.expand(check_string(path, "path")), monitor = monitor,
    mode = mode))
}

#' @rdname callbacks
#' @export
callback_csv_logger <- function(path) {
  call_py(core()$csv_logger(path.expand(check_string(path, "path"))))
}

#' @rdname callbacks
#' @export
callback_lr_schedule <- function(schedule, monitor = NULL, factor = 0.1, patience = 2,
                                 min_lr = 0) {
  if (is_r_function(schedule)) {
    f <- check_arity(schedule, 1, "schedule")
    schedule <- py_function(function(epoch) f(as.integer(as_r_value(epoch))))
  }
  call_py(core()$lr_schedule(schedule,
    monitor = monitor, factor = factor, patience = as_py_int(patience, "patience"),
    min_lr = min_lr
  ))
}

#' @rdname callbacks
#' @export
callback_early_stopping <- function(monitor = "val_loss", patience = 3, restore_best = TRUE,
                                    mode = "auto", min_delta = 0) {
  call_py(core()$early_stopping(monitor,
    patience = if (is.null(patience)) NULL else as_py_int(patience, "patience"),
    restore_best = as_py_flag(restore_best, "restore_best"), mode = mode, min_delta = min_delta
  ))
}

#' @rdname callbacks
#' @export
callback_lambda <- function(on_train_begin = NULL, on_epoch_begin = NULL, on_step_end = NULL,
                            on_epoch_end = NULL, on_train_end = NULL) {
  wrap <- function(f, arg) {
    if (!is_r_function(f)) {
      return(f)
    }
    check_arity(f, 1, arg)
    py_function(function(event) f(as_r_value(event)))
  }
  on_train_begin <- wrap(on_train_begin, "on_train_begin")
  on_epoch_begin <- wrap(on_epoch_begin, "on_epoch_begin")
  on_step_end <- wrap(on_step_end, "on_step_end")
  on_epoch_end <- wrap(on_epoch_end, "on_epoch_end")
  on_train_end <- wrap(on_train_end, "on_train_end")
  call_py(core()$lambda_callback(
    on_train_begin = on_train_begin, on_epoch_begin = on_epoch_begin,
    on_step_end = on_step_end, on_epoch_end = on_epoch_end, on_train_end = on_train_end
  ))
}

#' `callbacks` of fit_model(): NULL, one callback or R function, or a list of them
#' -> a Python list; R functions get the epoch's figures as an R list. Anything else
#' goes to Python as it is, whose message names what `callbacks` accepts.
#' @noRd
as_py_callbacks <- function(x) {
  if (is.null(x)) {
    return(list())
  }
  if (is.function(x) || is_py(x)) x <- list(x)
  if (!is.list(x)) {
    return(x)
  }
  lapply(x, function(f) {
    if (!is_r_function(f)) { # a Python callable stays one (it can reach workers)
      return(f)
    }
    check_arity(f, 1, "callbacks")
    py_function(function(figures) f(as_r_value(figures)))
  })
}

#' `metrics` of fit_model(): NULL, names (a character vector or list), functions of
#' (logits, labels) in a named list -> Python. An R function receives the logits as
#' an R matrix (one row per image) and the labels from 1, and returns a number.
#' @noRd
as_py_metrics <- function(x) {
  if (is.null(x)) {
    return(NULL)
  }
  if (is.character(x)) x <- as.list(x)
  if (is.function(x)) x <- list(x)
  if (!is.list(x)) {
    return(x)
  }
  named <- !is.null(names(x)) & nzchar(names(x) %||% rep("", length(x)))
  out <- list()
  for (i in seq_along(x)) {
    value <- x[[i]]
    if (is_r_function(value)) {
      if (!named[i]) {
        arg_error("metrics", paste(
          "names and named functions, e.g. list(\"top_3\", my_metric = function(logits,",
          "labels) ...): a function needs a name (its column in the history)"
        ), "an unnamed function")
      }
      out[[length(out) + 1]] <- reticulate::py_dict(names(x)[i], list(metric_function(value)))
    } else {
      out[[length(out) + 1]] <- value
    }
  }
  out
}

metric_function <- function(f) {
  check_arity(f, 2, "metrics")
  py_function(function(logits, labels) {
    f(as_r_array(logits), as.integer(as_r_array(labels)) + 1L)
  })
}

`%||%` <- function(a, b) if (is.null(a)) b else a
