#' Train a classifier
#'
#' Trains `model` in place with Adam and the cross-entropy loss, plus an optional
#' equivariance regularizer, shuffling the data at every epoch. The whole loop runs
#' in Python: R only receives the history. A progress bar (package cli) per epoch
#' shows the step, the time left (ETA) and the loss, and a line sums up each epoch
#' with its figures; `verbose = FALSE` silences both.
#'
#' **Data.** Images are an R array (or torch tensor) of dimension `c(N, C, H, W)`,
#' or `c(N, H, W)` for one channel; labels are R's class numbers (1, 2, ...) or a
#' factor, whose levels become the class names kept with the model
#' (`model$class_names`): [predict()] then returns a factor and [save_model()]
#' stores them. A level no image has keeps its class. A label tensor is Python's
#' and counts from 0.
#'
#' **Metrics and validation.** Every epoch records the mean `loss`, the training
#' `accuracy` (of the training steps' outputs) and the learning rate `lr`;
#' `metrics` adds more. With `validation_data`, the validation loss, accuracy and
#' every metric (`val_` columns) are measured after every epoch (in evaluation
#' mode); without it the history has no `val_` column. `best_epoch` is the epoch
#' of the lowest validation loss; its weights are the model's only when early
#' stopping restored them (`restored`, and the printed history says which).
#'
#' **Callbacks.** `callbacks` takes the objects of [callbacks]
#' ([callback_checkpoint()], [callback_csv_logger()], [callback_lr_schedule()],
#' [callback_early_stopping()], [callback_lambda()]) and R functions, each called
#' after every epoch with a list of the epoch's figures (`epoch`, `loss`, `reg`,
#' `accuracy`, the metrics, `val_loss`, `val_accuracy`, ..., `lr`, `seconds`);
#' when one returns `FALSE`, training stops after that epoch. `patience` is the
#' short form of `callback_early_stopping(patience = patience)`: it stops the
#' training when the validation loss has not improved for that many epochs, then
#' puts back the weights of the best epoch.
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
#' @param data Training data: what [fashion_mnist()] returns, a list of images
#'   and labels: `list(x, y)`, `list(x = , y = )` or `list(images = , labels = )`,
#'   or data read from files batch by batch: [image_folder()], [image_files()] or
#'   any Python torch `Dataset` returning `(image, label)`, `IterableDataset` or
#'   `DataLoader` (used as given). An image folder's class names are kept with the
#'   model.
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
#' @param ... More arguments of the core's `fit()`, by name (a name it does not
#'   have is an error that suggests the closest one):
#'   * `optimizer`: a ready torch optimizer over the model's parameters, used
#'     instead of Adam (`lr` is then the optimizer's own), e.g.
#'     `torch$optim$SGD(model$parameters(), lr = 0.01)`;
#'   * `reg_points = "sample"` evaluates the regularizer at points drawn in its
#'     bounds instead of the batch's first images (`"batch"`);
#'   * `reuse_outputs = FALSE` never reuses the batch's forward pass for the
#'     regularizer;
#'   * `sync_batchnorm = FALSE`: with `workers > 1`, batch norm without statistics
#'     over all processes;
#'   * `num_workers = 1`: with data read from files ([image_folder()], a Python
#'     `Dataset`), decode the batches in a background process.
#'
#'   The arguments after `...` must be named in full.
#' @param validation_data `NULL`, data as for `data` (labels as in `data`), or a
#'   fraction in (0, 1) of `data` held out at random (drawn with `seed`; the files
#'   of an image folder).
#' @param unlabeled_data `NULL`, or images without labels on which the
#'   regularizer (which it needs) is evaluated at every step: a batch of the
#'   regularizer's `n` of them, drawn in order from shuffled passes over them
#'   (seeded by `seed`), independent of the labelled batches; the loss never sees
#'   them and `augment` does not apply to them. An R array (or tensor) of images of
#'   the shape of `data`'s, a data set from [fashion_mnist()], or a list of images
#'   and labels as for `data`, whose labels are ignored. Then `reg_points`
#'   (through `...`) is `"unlabeled"`; giving `reg_points = "unlabeled"` without
#'   `unlabeled_data` is an error. See `vignette("regularizer")`.
#' @param metrics `NULL`, or figures to record per epoch besides the loss and the
#'   accuracy: names (`"accuracy"`, `"top_3"` for the top-3 accuracy, `"top_<k>"`
#'   for any k, `"balanced_accuracy"`, `"macro_f1"`) and named functions
#'   `function(logits, labels)` returning a number (logits an R matrix with one row
#'   per image, labels from 1), e.g. `list("top_3", mine = function(logits, labels)
#'   mean(max.col(logits) == labels))`. Each is measured on the training epoch and
#'   on the validation data (`val_<name>`).
#' @param callbacks `NULL`, or a list of callbacks (see [callbacks]) and R
#'   functions, each function called after every epoch with a list of its figures;
#'   one returning `FALSE` stops training.
#' @param patience `NULL`, or stop after that many epochs without a lower
#'   validation loss and put back the best epoch's weights (the short form of
#'   [callback_early_stopping()]).
#' @param device `"auto"` (CUDA when available, else the CPU), `"cpu"`, `"cuda"`,
#'   `"cuda:1"`, `"mps"`, or `NULL` (where the model is). The model moves there and
#'   stays there.
#' @param workers Number of local processes that train data-parallel (started with
#'   `torchrun`; gloo on the CPU, one GPU per process with CUDA). `batch_size` stays
#'   the global batch (it must be divisible by `workers`), so the training is that
#'   of one process; the model is trained in place and the same history returned.
#'   Everything passed must reach the processes: no R functions as `augment`,
#'   `metrics` or `callbacks` (Python callables and the package's callbacks do);
#'   progress is printed through R's output (which [utils::capture.output()] and
#'   knitr see) instead of the progress bar. A failing process stops the others,
#'   and the error names the process that failed first and why (its error, where
#'   it hung, or the signal that killed it). If this R session ends, however it is
#'   killed, the processes end within seconds.
#' @param timeout With `workers > 1`: seconds a process waits for the others before
#'   the training fails.
#' @param port With `workers > 1`: the TCP port on 127.0.0.1 the processes meet on;
#'   `NULL` picks a free one.
#' @return Invisibly, an object of class `equivariance_history`: a list with
#'   `steps` (a data.frame with `step`, `epoch`, `loss`, `reg`), `epochs` (a
#'   data.frame with `epoch`, mean `loss` and `reg`, `accuracy`, the metrics,
#'   with validation data `val_loss`, `val_accuracy` and the `val_` metrics, then
#'   `lr` and `seconds`), `best_epoch`, `monitor` (the figure that chose it),
#'   `restored`, `stopped_early` and `reused_outputs`. It has `print()`,
#'   [plot()][plot.equivariance_history()] and `as.data.frame()` methods (one row
#'   per epoch).
#' @seealso [predict()], [save_model()], [evaluate_rotations()], [train_step()],
#'   `vignette("your-own-data")`
#' @export
#' @examples
#' if (equivariance_available()) {
#'   set_seed(1)
#'   train <- fashion_mnist("train", limit = 256, root = "subset")
#'   model <- simple_cnn()
#'   history <- fit_model(model, train, epochs = 2, batch_size = 64,
#'     validation_data = 0.25, patience = 1, metrics = "macro_f1", verbose = FALSE)
#'   as.data.frame(history)
#'   # an R array of images (N, H, W) and a factor of labels
#'   x <- as.array(train)[, 1, , ]
#'   model <- c4_cnn(widths = c(2, 2, 2))
#'   fit_model(model, list(x, train$y), batch_size = 64, verbose = FALSE)
#'   predict(model, x[1:3, , ])
#' }
fit_model <- function(model, data, epochs = 1, batch_size = 128, lr = 1e-3,
                      regularizer = NULL, seed = NULL, augment = NULL, verbose = TRUE, ...,
                      validation_data = NULL, metrics = NULL, callbacks = NULL,
                      patience = NULL, device = "auto", workers = 1, timeout = 600,
                      port = NULL, unlabeled_data = NULL) {
  check_dots(core()$fit, ...)
  model <- as_py_module(model, "model")
  dtype <- model_float_dtype(model)
  train <- as_fit_data(data, "data", dtype)
  verbose <- as_py_flag(verbose, "verbose")
  args <- list(
    model, train$py,
    epochs = as_py_int(epochs, "epochs"),
    batch_size = as_py_int(batch_size, "batch_size"),
    lr = as_py_number(lr, "lr"),
    regularizer = as_py_regularizer(regularizer, "regularizer"),
    seed = as_py_seed(seed, "seed"),
    augment = as_py_function_or_value(augment),
    verbose = verbose,
    validation_data = as_validation_data(validation_data, dtype),
    unlabeled_data = as_unlabeled_data(unlabeled_data, dtype),
    patience = if (is.null(patience)) NULL else as_py_int(patience, "patience"),
    metrics = as_py_metrics(metrics),
    callbacks = fit_callbacks(callbacks, verbose, workers, environment()),
    device = device,
    class_names = if (is.null(train$class_names)) NULL else as.list(train$class_names)
  )
  history <- call_with_workers("fit", c(args, list(...)), workers, timeout, port)
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

as_r_value <- function(x) if (is_py(x)) reticulate::py_to_r(x) else x

#' The callbacks of fit_model() with the cli display in front (one process,
#' `verbose`): an R function cannot reach worker processes, whose rank 0 prints the
#' core's progress bar instead.
#' @noRd
fit_callbacks <- function(callbacks, verbose, workers, envir) {
  callbacks <- as_py_callbacks(callbacks)
  if (!is.list(callbacks) || !verbose || !single_process(workers)) {
    return(callbacks)
  }
  display <- core()$training$progress$ProgressEvents(cli_fit_display(envir))
  c(list(display), callbacks)
}

#' An R function becomes a Python callable; anything else goes to Python as it is,
#' where the argument's rule lives (and its message names what is accepted).
#' @noRd
as_py_function_or_value <- function(x) {
  if (is_r_function(x)) py_function(x) else x
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
#'   `accuracy` (in `[0, 1]`), `correct`, `n`, `invariance_error`: the mean
#'   distance between the logits of rotated and upright images relative to the mean
#'   size of the upright logits (0 for an exactly invariant model), and
#'   `agreement`, the same on every row: the share (in `[0, 1]`) of the images given
#'   the same class at every one of `rotations` (1 for an exactly invariant model).
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
    invariance_error = vapply(rows, function(r) as.numeric(r$invariance_error), numeric(1)),
    agreement = vapply(rows, function(r) as.numeric(r$agreement), numeric(1))
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
#' @param y Their labels, as in [fit_model()]: class numbers from 1 or a factor
#'   (a torch tensor of labels is Python's and counts from 0).
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
  y <- as_fit_labels(y, "y")$py # from 1 or a factor, as fit_model() takes them
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
