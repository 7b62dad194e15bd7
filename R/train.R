#' Train a classifier
#'
#' Trains `model` in place with Adam and the cross-entropy loss, plus an optional
#' equivariance regularizer, shuffling the data at every epoch. The whole loop runs
#' in Python: R only receives the loss history. A progress line is printed during
#' each epoch and a summary after it (`verbose = FALSE` turns them off).
#'
#' With a regularizer made by [equivariance_regularizer()], the regularizer is
#' evaluated at the first `n` images of each training batch (its `n`; the whole batch
#' when `n` is larger), and reuses the model's outputs on the batch instead of
#' running the model on them again, unless the model has dropout or batch-norm-like
#' layers (whose output differs between training and evaluation): then the
#' regularizer runs its own deterministic pass.
#'
#' The model trains in training mode, except the layers you put in evaluation mode
#' inside it (a batch norm frozen with `model$bn$eval()` stays frozen); every
#' layer's mode is restored afterwards. Training stops with an error naming the
#' epoch and the step at the first loss that is not finite (NaN or infinite),
#' before that step changes the model, and says whether the batch held NaN or
#' infinite values.
#'
#' @param model A torch `nn.Module` returning logits, e.g. [simple_cnn()].
#' @param data Training data: what [fashion_mnist()] returns, or
#'   `list(images = , labels = )` with an R array (or tensor) of images of dimension
#'   `c(N, ...)` and labels `0, 1, ...` (whole numbers or a factor).
#' @param epochs Number of passes over the data.
#' @param batch_size Images per optimization step.
#' @param lr Adam's learning rate.
#' @param regularizer `NULL`, or a regularizer made by [equivariance_regularizer()]
#'   for `model`, added to the loss at every step.
#' @param seed `NULL` or a whole number from 0 that seeds the shuffling and torch's
#'   random generator (the regularizer's and the augmentation's draws): the same
#'   seed and the same initial model give the same run.
#' @param augment `NULL`, or a transform applied to every training batch before
#'   the model sees it: a transform of the package such as
#'   [transform_random_rot90()] (a random quarter turn per image), or an R
#'   function of a batch of images (a torch tensor) returning a batch of the same
#'   size (a tensor or an R array).
#' @param verbose Print progress.
#' @param ... Passed to the Python `fit()`: `reg_points = "sample"` evaluates the
#'   regularizer at points drawn in its bounds; `reuse_outputs = FALSE` never reuses
#'   the batch's forward pass; `progress_every` sets the steps between progress
#'   lines.
#' @return Invisibly, an object of class `equivariance_history`: a list with
#'   `steps` (a data.frame with `step`, `epoch`, `loss`, `reg`), `epochs` (a
#'   data.frame with `epoch`, mean `loss` and `reg`, `seconds`) and `reused_outputs`.
#'   It has `print()` and `plot()` methods.
#' @seealso [evaluate_rotations()], [train_step()]
#' @export
#' @examples
#' if (equivariance_available()) {
#'   train <- fashion_mnist("train", limit = 256, root = "subset")
#'   model <- simple_cnn()
#'   history <- fit_model(model, train, epochs = 1, batch_size = 64, seed = 1)
#'   history
#'   # the same network, trained on images turned by random quarter turns
#'   fit_model(simple_cnn(), train,
#'     batch_size = 64, seed = 1, augment = transform_random_rot90(), verbose = FALSE
#'   )
#'   evaluate_rotations(model, fashion_mnist("test", limit = 200, root = "subset"))
#' }
fit_model <- function(model, data, epochs = 1, batch_size = 128, lr = 1e-3,
                      regularizer = NULL, seed = NULL, augment = NULL, verbose = TRUE, ...) {
  model <- as_py_module(model, "model")
  data <- as_py_dataset(data, "data")
  args <- list(
    model, data,
    epochs = as_py_int(epochs, "epochs"),
    batch_size = as_py_int(batch_size, "batch_size"),
    lr = as_py_positive(lr, "lr"),
    regularizer = as_py_regularizer(regularizer, "regularizer"),
    seed = as_py_seed(seed, "seed"),
    augment = as_py_function_or_value(augment),
    verbose = as_py_flag(verbose, "verbose")
  )
  extra <- list(...)
  if (!is.null(extra$progress_every)) extra$progress_every <- as_py_int(extra$progress_every, "progress_every")
  history <- call_py(do.call(core()$fit, c(args, extra)))
  invisible(as_history(history))
}

#' An R function becomes a Python callable; anything else goes to Python as it is,
#' where the argument's rule lives (and its message names what is accepted).
#' @noRd
as_py_function_or_value <- function(x) {
  if (is.function(x)) reticulate::r_to_py(x) else x
}

as_history <- function(history) {
  h <- history$as_dict()
  steps <- h$steps
  epochs <- h$epochs
  structure(
    list(
      steps = data.frame(
        step = as.integer(unlist(steps$step)), epoch = as.integer(unlist(steps$epoch)),
        loss = as.numeric(unlist(steps$loss)), reg = as.numeric(unlist(steps$reg))
      ),
      epochs = data.frame(
        epoch = as.integer(unlist(epochs$epoch)), loss = as.numeric(unlist(epochs$loss)),
        reg = as.numeric(unlist(epochs$reg)), seconds = as.numeric(unlist(epochs$seconds))
      ),
      reused_outputs = isTRUE(h$reused_outputs)
    ),
    class = "equivariance_history"
  )
}

#' @export
print.equivariance_history <- function(x, ...) {
  cat("<equivariance_history> ", nrow(x$steps), " steps, ", nrow(x$epochs), " epochs\n", sep = "")
  print(x$epochs, row.names = FALSE, digits = 4)
  invisible(x)
}

#' @export
plot.equivariance_history <- function(x, y, ...) {
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
evaluate_rotations <- function(model, data, rotations = 0:3, batch_size = 1000) {
  model <- as_py_module(model, "model")
  data <- as_py_dataset(data, "data")
  rows <- call_py(core()$evaluate(
    model, data,
    rotations = as_py_quarter_turns(rotations, "rotations"),
    batch_size = as_py_int(batch_size, "batch_size")
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
