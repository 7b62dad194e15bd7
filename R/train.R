#' Train a classifier
#'
#' Trains `model` in place with Adam and the cross-entropy loss, plus an optional
#' equivariance regularizer, shuffling the data at every epoch. The whole loop runs
#' in Python: R only receives the history. A progress bar (package cli) shows the
#' epoch, the step, the loss, the validation accuracy and the time left, and a line
#' sums up each epoch; `verbose = FALSE` silences both.
#'
#' **Data.** Images are an R array (or torch tensor) of dimension `c(N, C, H, W)`,
#' or `c(N, H, W)` for one channel; labels are R's class numbers (1, 2, ...) or a
#' factor, whose levels become the class names kept with the model
#' (`model$class_names`): [predict()] then returns a factor and [save_model()]
#' stores them. A level no image has keeps its class. A label tensor is Python's
#' and counts from 0.
#'
#' **Validation and early stopping.** With `validation_data`, the validation loss
#' and accuracy are measured after every epoch (in evaluation mode). `patience`
#' stops the training when the validation loss has not improved for that many
#' epochs, and then (`restore_best`) puts back the weights of the best epoch.
#'
#' **Callbacks.** Each function of `callbacks` is called after every epoch with a
#' list of the epoch's figures (`epoch`, `loss`, `reg`, `val_loss`, `val_accuracy`,
#' `seconds`); when one returns `FALSE`, training stops after that epoch.
#'
#' With a regularizer made by [equivariance_regularizer()], the regularizer is
#' evaluated at the first `n` images of each training batch and reuses the model's
#' outputs on them, unless the model has dropout or batch-norm-like layers: then it
#' runs its own deterministic pass. The model trains in training mode, except the
#' layers you froze with `$eval()`; every layer's mode is restored afterwards.
#' Training stops with an error naming the epoch and the step at the first loss
#' that is not finite, before that step changes the model.
#'
#' @param model A torch `nn.Module` returning logits, e.g. [c4_cnn()].
#' @param data Training data: what [fashion_mnist()] returns, or a list of images
#'   and labels: `list(x, y)`, `list(x = , y = )` or `list(images = , labels = )`.
#' @param epochs Number of passes over the data.
#' @param batch_size Images per optimization step.
#' @param lr Adam's learning rate.
#' @param regularizer `NULL`, or a regularizer made by [equivariance_regularizer()]
#'   for `model`, added to the loss at every step.
#' @param seed `NULL` or a whole number from 0 that seeds the shuffling, the
#'   validation split and torch's random generator. `NULL`: they follow torch's
#'   generator, which [set_seed()] seeds.
#' @param augment `NULL`, or a transform applied to every training batch before
#'   the model sees it: a transform of the package such as
#'   [transform_random_rot90()], or an R function of a batch of images (a torch
#'   tensor) returning a batch of the same size (a tensor or an R array).
#' @param verbose Show progress.
#' @param ... Passed to the Python `fit()`: `reg_points = "sample"` evaluates the
#'   regularizer at points drawn in its bounds; `reuse_outputs = FALSE` never reuses
#'   the batch's forward pass; `callback` is called after every step with
#'   `(epoch, step, loss, reg)`. The arguments after `...` must be named in full.
#' @param validation_data `NULL`, data as for `data` (labels as in `data`), or a
#'   fraction in (0, 1) of `data` held out at random (drawn with `seed`).
#' @param patience `NULL`, or stop after that many epochs without a lower
#'   validation loss.
#' @param restore_best Put back the weights of the epoch with the lowest
#'   validation loss at the end; `NULL`: `TRUE` when `patience` is set.
#' @param callbacks `NULL` or a list of functions, each called after every epoch
#'   with a list of its figures; one returning `FALSE` stops training.
#' @param device `"auto"` (CUDA when available, else the CPU), `"cpu"`, `"cuda"`,
#'   `"cuda:1"`, `"mps"`, or `NULL` (where the model is). The model moves there and
#'   stays there.
#' @param workers Number of local processes that train data-parallel (started with
#'   `torchrun`; gloo on the CPU, one GPU per process with CUDA). `batch_size` stays
#'   the global batch (it must be divisible by `workers`), so the training is that
#'   of one process; the model is trained in place and the same history returned.
#'   Everything passed must reach the processes: no R functions as `augment`,
#'   `callbacks` or `callback` (progress is printed instead of the progress bar).
#'   A failing process stops the others and its error names it.
#' @param timeout With `workers > 1`: seconds a process waits for the others before
#'   the training fails.
#' @param port With `workers > 1`: the TCP port on 127.0.0.1 the processes meet on;
#'   `NULL` picks a free one.
#' @return Invisibly, an object of class `equivariance_history`: a list with
#'   `steps` (a data.frame with `step`, `epoch`, `loss`, `reg`), `epochs` (a
#'   data.frame with `epoch`, mean `loss` and `reg`, `val_loss`, `val_accuracy`,
#'   `seconds`), `best_epoch`, `stopped_early` and `reused_outputs`. It has
#'   `print()`, `plot()` and `as.data.frame()` methods (one row per epoch).
#' @seealso [predict()], [save_model()], [evaluate_rotations()], [train_step()],
#'   `vignette("your-own-data")`
#' @export
#' @examples
#' if (equivariance_available()) {
#'   set_seed(1)
#'   train <- fashion_mnist("train", limit = 256, root = "subset")
#'   model <- simple_cnn()
#'   history <- fit_model(model, train, epochs = 2, batch_size = 64,
#'     validation_data = 0.25, patience = 1, verbose = FALSE)
#'   as.data.frame(history)
#'   # an R array of images (N, H, W) and a factor of labels
#'   x <- as.array(train)[, 1, , ]
#'   model <- c4_cnn(widths = c(2, 2, 2))
#'   fit_model(model, list(x, train$y), batch_size = 64, verbose = FALSE)
#'   predict(model, x[1:3, , ])
#' }
fit_model <- function(model, data, epochs = 1, batch_size = 128, lr = 1e-3,
                      regularizer = NULL, seed = NULL, augment = NULL, verbose = TRUE, ...,
                      validation_data = NULL, patience = NULL, restore_best = NULL,
                      callbacks = NULL, device = "auto", workers = 1, timeout = 600,
                      port = NULL) {
  model <- as_py_module(model, "model")
  dtype <- model_float_dtype(model)
  train <- as_fit_data(data, "data", dtype)
  verbose <- as_py_flag(verbose, "verbose")
  args <- list(
    model, train$py,
    epochs = as_py_int(epochs, "epochs"),
    batch_size = as_py_int(batch_size, "batch_size"),
    lr = as_py_positive(lr, "lr"),
    regularizer = as_py_regularizer(regularizer, "regularizer"),
    seed = as_py_seed(seed, "seed"),
    augment = as_py_function_or_value(augment),
    verbose = verbose,
    validation_data = as_validation_data(validation_data, dtype),
    patience = if (is.null(patience)) NULL else as_py_whole(patience, "patience"),
    restore_best = if (is.null(restore_best)) NULL else as_py_flag(restore_best, "restore_best"),
    callbacks = as_py_functions(callbacks),
    device = device,
    class_names = if (is.null(train$class_names)) NULL else as.list(train$class_names),
    # an R function cannot reach worker processes: rank 0 prints its progress instead
    progress = if (verbose && single_process(workers)) cli_progress(environment()) else NULL
  )
  extra <- list(...)
  if (!is.null(extra$progress_every)) extra$progress_every <- as_py_int(extra$progress_every, "progress_every")
  if (is_r_function(extra$callback)) {
    check_arity(extra$callback, 4, "callback")
    extra$callback <- py_function(extra$callback)
  }
  history <- call_with_workers("fit", c(args, extra), workers, timeout, port)
  invisible(as_history(history))
}

#' `validation_data`: a fraction goes to Python as a number (the core checks it),
#' data as for `data` (a factor's labels are matched to the training classes by name).
#' @noRd
as_validation_data <- function(x, dtype) {
  if (is.null(x)) {
    return(NULL)
  }
  if (is.numeric(x) && !is.logical(x) && length(x) == 1 && is.null(dim(x))) {
    return(as.double(x))
  }
  as_fit_data(x, "validation_data", dtype)$py
}

#' NULL, a function or a list of functions -> a Python list of callables (anything
#' else goes to Python as it is, whose message names what `callbacks` accepts).
#' @noRd
as_py_functions <- function(x) {
  if (is.null(x)) {
    return(NULL)
  }
  if (is.function(x)) x <- list(x)
  if (!is.list(x)) {
    return(x)
  }
  for (f in Filter(is_r_function, x)) check_arity(f, 1, "callbacks")
  # each function sees the figures as an R list (numbers, NULL for None)
  wrap <- function(f) if (is_r_function(f)) function(figures) f(as_r_value(figures)) else f
  reticulate::r_to_py(lapply(x, function(f) as_py_function_or_value(wrap(f))))
}

as_r_value <- function(x) if (is_py(x)) reticulate::py_to_r(x) else x

#' An R function becomes a Python callable; anything else goes to Python as it is,
#' where the argument's rule lives (and its message names what is accepted).
#' @noRd
as_py_function_or_value <- function(x) {
  if (is_r_function(x)) py_function(x) else x
}

#' The progress function fit() calls with its events (see the Python
#' ProgressFunction): a cli progress bar over all the steps of all the epochs, and
#' a line per epoch. The bar belongs to `envir` (fit_model()'s frame), so cli
#' closes it when fit_model() returns, even on an error.
#' @noRd
cli_progress <- function(envir) {
  id <- NULL
  steps <- 1
  val <- ""
  function(event) {
    event <- as_r_value(event)
    e <- event[["event"]]
    if (identical(e, "start")) {
      steps <<- event$steps
      id <<- cli::cli_progress_bar(
        total = event$epochs * steps, auto_terminate = FALSE, clear = TRUE, .envir = envir,
        format = paste0(
          "epoch {cli::pb_extra$epoch}/", event$epochs, " {cli::pb_bar} {cli::pb_extra$step}/",
          steps, " | loss {cli::pb_extra$loss}{cli::pb_extra$val} | ETA {cli::pb_eta}"
        ),
        extra = list(epoch = 1, step = 0, loss = "-", val = "")
      )
    } else if (identical(e, "step")) {
      cli::cli_progress_update(
        id = id, set = (event$epoch - 1) * steps + event$step, .envir = envir,
        extra = list(epoch = event$epoch, step = event$step, loss = fmt(event$loss), val = val)
      )
    } else if (identical(e, "epoch")) {
      if (!is.null(event$val_accuracy)) val <<- paste0(" val_acc ", fmt(event$val_accuracy))
      cli::cli_progress_output(epoch_line(event), id = id, .envir = envir)
    } else if (identical(e, "end") && !is.null(id)) {
      cli::cli_progress_done(id = id, .envir = envir)
    }
    NULL
  }
}

fmt <- function(x) formatC(x, digits = 4, format = "fg")

epoch_line <- function(event) {
  figures <- c(loss = event$loss, reg = event$reg, val_loss = event$val_loss,
               val_accuracy = event$val_accuracy)
  paste0(
    "epoch ", event$epoch, ": ", paste(names(figures), fmt(figures), collapse = ", "),
    " (", format(round(event$seconds, 1), nsmall = 1), " s)"
  )
}

as_history <- function(history) {
  h <- history$as_dict()
  steps <- h$steps
  epochs <- h$epochs
  n <- length(unlist(epochs$epoch))
  val <- function(x) if (length(unlist(x)) == n) as.numeric(unlist(x)) else rep(NA_real_, n)
  structure(
    list(
      steps = data.frame(
        step = as.integer(unlist(steps$step)), epoch = as.integer(unlist(steps$epoch)),
        loss = as.numeric(unlist(steps$loss)), reg = as.numeric(unlist(steps$reg))
      ),
      epochs = data.frame(
        epoch = as.integer(unlist(epochs$epoch)), loss = as.numeric(unlist(epochs$loss)),
        reg = as.numeric(unlist(epochs$reg)), val_loss = val(epochs$val_loss),
        val_accuracy = val(epochs$val_accuracy), seconds = as.numeric(unlist(epochs$seconds))
      ),
      best_epoch = if (is.null(h$best_epoch)) NA_integer_ else as.integer(h$best_epoch),
      stopped_early = isTRUE(h$stopped_early),
      reused_outputs = isTRUE(h$reused_outputs)
    ),
    class = "equivariance_history"
  )
}

#' @export
as.data.frame.equivariance_history <- function(x, row.names = NULL, optional = FALSE, ...) {
  e <- x$epochs
  cols <- c("epoch", "loss", if (any(x$steps$reg != 0)) "reg", "val_loss", "val_accuracy")
  out <- e[cols]
  if (!is.null(row.names)) rownames(out) <- row.names
  out
}

#' @export
print.equivariance_history <- function(x, ...) {
  cat("<equivariance_history> ", nrow(x$steps), " steps, ", nrow(x$epochs), " epochs", sep = "")
  if (!is.na(x$best_epoch)) cat(", best epoch ", x$best_epoch, sep = "")
  if (x$stopped_early) cat(", stopped early")
  cat("\n")
  print(as.data.frame(x), row.names = FALSE, digits = 4)
  invisible(x)
}

#' @export
plot.equivariance_history <- function(x, y, ...) {
  e <- x$epochs
  if (all(is.na(e$val_loss))) {
    return(plot_steps(x, ...))
  }
  old <- graphics::par(mfrow = c(1, 2))
  on.exit(graphics::par(old), add = TRUE)
  graphics::plot(e$epoch, e$loss,
    type = "b", xlab = "epoch", ylab = "loss", ylim = range(c(e$loss, e$val_loss), finite = TRUE),
    ...
  )
  graphics::lines(e$epoch, e$val_loss, type = "b", col = "firebrick")
  if (!is.na(x$best_epoch)) graphics::abline(v = x$best_epoch, lty = 3)
  graphics::legend("topright", c("training", "validation"),
    col = c("black", "firebrick"), lty = 1, bty = "n"
  )
  graphics::plot(e$epoch, e$val_accuracy, type = "b", xlab = "epoch", ylab = "validation accuracy",
    col = "firebrick")
  invisible(x)
}

plot_steps <- function(x, ...) {
  steps <- x$steps
  has_reg <- any(steps$reg != 0)
  graphics::plot(steps$step, steps$loss,
    type = "l", xlab = "step", ylab = "loss",
    ylim = range(c(steps$loss, if (has_reg) steps$reg), finite = TRUE), ...
  )
  if (has_reg) {
    graphics::lines(steps$step, steps$reg, col = "firebrick")
    graphics::legend("topright", c("cross-entropy", "regularizer"),
      col = c("black", "firebrick"), lty = 1, bty = "n"
    )
  }
  invisible(x)
}

#' Accuracy on rotated images
#'
#' Evaluates a classifier on `data` rotated by each number of quarter turns in
#' `rotations` (counter-clockwise, `torch.rot90` on the two image dimensions), in
#' evaluation mode and without gradients, in batches. Every layer's mode is
#' restored afterwards; images holding NaN or infinite values are an error.
#'
#' @param model A torch `nn.Module` returning logits.
#' @param data Test data, as for [fit_model()].
#' @param rotations Numbers of quarter turns, each 0, 1, 2 or 3 (for 0, 90, 180 and
#'   270 degrees): `0:3` for all four.
#' @param batch_size Images per forward pass.
#' @param device `"auto"` (CUDA when available, else the CPU), `"cpu"`, `"cuda"`,
#'   `"cuda:1"`, `"mps"`, or `NULL` (where the model is). The model is moved there
#'   for the call and back afterwards.
#' @return A data.frame with one row per rotation: `rotation` (degrees),
#'   `accuracy` (in `[0, 1]`), `correct`, `n`, and `invariance_error`: the mean
#'   distance between the logits of rotated and upright images relative to the mean
#'   size of the upright logits (0 for an exactly invariant model).
#' @seealso [fit_model()]
#' @export
#' @examples
#' if (equivariance_available()) {
#'   test <- fashion_mnist("test", limit = 200, root = "subset")
#'   evaluate_rotations(c4_cnn(), test)
#' }
evaluate_rotations <- function(model, data, rotations = 0:3, batch_size = 1000,
                               device = "auto") {
  model <- as_py_module(model, "model")
  data <- as_fit_data(data, "data", model_float_dtype(model))$py
  rows <- call_py(core()$evaluate(
    model, data,
    rotations = as_py_quarter_turns(rotations, "rotations"),
    batch_size = as_py_int(batch_size, "batch_size"),
    device = device
  ))
  data.frame(
    rotation = vapply(rows, function(r) as.numeric(r$degrees), numeric(1)),
    accuracy = vapply(rows, function(r) as.numeric(r$accuracy), numeric(1)),
    correct = vapply(rows, function(r) as.integer(r$correct), integer(1)),
    n = vapply(rows, function(r) as.integer(r$n), integer(1)),
    invariance_error = vapply(rows, function(r) as.numeric(r$invariance_error), numeric(1))
  )
}

#' One training step, run in Python
#'
#' Forward pass, cross-entropy loss plus the regularizer, backward pass and
#' `optimizer$step()`, all in Python; returns plain numbers. Use it in training
#' loops written in R: R then holds no tensor between steps.
#'
#' A loop written tensor by tensor in R works too: call `loss$backward()` and
#' `optimizer$step()` on every step and let the loss go out of scope (reassign it).
#' After `backward()` a loss keeps no intermediate activations. The few small
#' objects R keeps until its garbage collector runs would pin freed activation
#' memory; after each optimizer step the package gives free heap pages back to the
#' system when the process has grown by 16 MB (set the environment variable
#' `EQUIVARIANCE_RELEASE_MEMORY=0` before loading the package to turn this off).
#'
#' @param model A torch `nn.Module` returning logits.
#' @param optimizer A torch optimizer over the model's parameters, e.g.
#'   `torch$optim$Adam(model$parameters(), lr = 1e-3)`.
#' @param x A batch of images (a tensor or an R array of dimension `c(N, ...)`).
#' @param y Their labels (whole numbers from 0, or a tensor).
#' @param regularizer `NULL` or a regularizer from [equivariance_regularizer()],
#'   evaluated at the first `n` images of the batch (as in [fit_model()]).
#' @param augment `NULL` or a transform applied to the batch first, as in
#'   [fit_model()].
#' @return A named numeric vector: `loss` (cross-entropy), `reg` (regularizer) and
#'   `total`. A loss that is not finite is an error, raised before the optimizer's
#'   step.
#' @seealso [fit_model()]
#' @export
#' @examples
#' if (equivariance_available()) {
#'   torch <- reticulate::import("torch")
#'   train <- fashion_mnist("train", limit = 64, root = "subset")
#'   model <- simple_cnn()
#'   opt <- torch$optim$Adam(model$parameters(), lr = 1e-3)
#'   for (i in 1:3) print(train_step(model, opt, train$images, train$labels))
#' }
train_step <- function(model, optimizer, x, y, regularizer = NULL, augment = NULL) {
  model <- as_py_module(model, "model")
  if (!inherits(optimizer, "torch.optim.optimizer.Optimizer")) {
    arg_error("optimizer", "a torch optimizer", describe(optimizer))
  }
  x <- as_py_tensor(x, "x")
  if (!is_py_tensor(y)) {
    if (!is.numeric(y) || !all(vapply(y, is_whole, logical(1))) || any(y < 0)) {
      arg_error("y", "whole numbers >= 0 (class indices)", describe(y))
    }
  }
  y <- as_py_tensor(y, "y", dtype = "int64")
  out <- call_py(core()$train_step(model, optimizer, x, y,
    regularizer = as_py_regularizer(regularizer, "regularizer"),
    augment = as_py_function_or_value(augment)
  ))
  c(loss = out$loss, reg = out$reg, total = out$total)
}

#' An R function that cannot be called with `n` arguments fails here, naming `arg`,
#' and not deep inside the training (where it would surface as a Python error).
#' @noRd
check_arity <- function(f, n, arg) {
  args <- formals(args(f))
  if ("..." %in% names(args)) {
    return(invisible(f))
  }
  required <- sum(vapply(args, function(a) identical(a, quote(expr = )), logical(1)))
  if (length(args) < n || required > n) {
    got <- if (length(args)) paste0("function(", paste(names(args), collapse = ", "), ")") else "function()"
    arg_error(arg, paste0("a function of ", n, " argument", if (n > 1) "s"), got, class = "type")
  }
  invisible(f)
}
