#' Rotated Fashion-MNIST benchmark
#'
#' Trains each model on the upright Fashion-MNIST training images with one recipe
#' (Adam, cross-entropy, the same learning rate, batch size and seed for all) and
#' tests it on the test images turned by 0, 90, 180 and 270 degrees: a plain CNN is
#' accurate upright and lost on turned images, while networks built to be invariant
#' to quarter turns are equally accurate at every angle. The whole run happens in
#' Python; with `verbose = TRUE` a progress bar (package cli) shows "model k of n",
#' the epoch and its ETA and the overall ETA, and the table is printed at the end.
#'
#' The built-in models, each with at most about 14,000 parameters:
#' * `"SimpleCNN"`: a plain CNN (see [simple_cnn()]), the baseline;
#' * `"SimpleCNN+aug"`: the same network trained on randomly turned images, each
#'   training image turned by a random quarter turn drawn anew at every step
#'   (`augment = transform_random_rot90()` in [fit_model()]): the baseline a user
#'   would try first;
#' * `"SimpleCNN+reg"`: the same network and augmentation, plus an equivariance
#'   regularizer that asks its class probabilities to be invariant to quarter turns
#'   of the training batch (transforms `list(transform_identity(),
#'   transform_rot90(k), 0, reg_lambda)` for `k = 1, 2, 3` with
#'   `dist = "kl_logits"` (symmetric Kullback-Leibler divergence), `reg_num_funcs`
#'   of them per step, at the first `reg_n` images of each batch, or at `reg_n`
#'   unlabeled images per step with `labels`);
#' * `"EqCNN"`: the same filters applied to the 4 rotations of the input ([eq_cnn()]);
#' * `"C4CNN"`: this package's C4 group-convolution network ([c4_cnn()]);
#' * `"EscnnC4CNN"`: the same network built from escnn's layers ([escnn_c4_cnn()]).
#'
#' Three more rows are built in but not run unless named, for `test = "d4"`:
#' `"D4CNN"` ([d4_cnn()] with its default widths, invariant to rotations and
#' mirrors), `"EscnnC8CNN"` (`escnn_cnn(N = 8)`, invariant to turns by 45 degrees)
#' and `"EscnnD4CNN"` (`escnn_cnn(N = 4, flips = TRUE)`).
#'
#' @param models Built-in model names (see Details), or a named list whose
#'   elements are built-in names, torch modules (trained in place) or functions
#'   returning a fresh torch module; the names label the table's rows.
#' @param epochs,batch_size,lr,seed The training recipe shared by all models.
#' @param limit,test_limit `NULL` or the number of training / test images to use.
#' @param root Where the Fashion-MNIST files are, as in [fashion_mnist()]
#'   (`"subset"`: the subset shipped with the package).
#' @param data `NULL` (Fashion-MNIST, see `root`), or your own data:
#'   `list(train, test)` of data as [fit_model()] takes (two [image_folder()]s,
#'   say). Built-in models are then made for its channels and classes.
#' @param rotations Quarter turns to test: `0:3` for 0, 90, 180 and 270 degrees.
#' @param test `"c4"` tests on the test images turned by `rotations`; `"d4"` also
#'   on the mirrored (left to right) test images turned by `rotations`: the 8
#'   elements of D4 for the default rotations.
#' @param reg_n,reg_num_funcs,reg_lambda,reg_warmup The regularizer of
#'   `"SimpleCNN+reg"`: images of each batch (or unlabeled images, with `labels`)
#'   it is evaluated at per step, rotations drawn per step, weight, and the number
#'   of steps over which the weight grows linearly from 0 (0: none).
#' @param labels `NULL` (every training image keeps its label) or a label budget:
#'   the number of labelled training images, a class-balanced subset drawn with
#'   `seed`, from the number of classes to the size of the training set. Every row
#'   trains on that subset (repeated so that an epoch has as many steps as with all
#'   the labels: 469 at batch 128 on the full data); the regularized row also gets
#'   the other training images, without labels, as `unlabeled_data` of
#'   [fit_model()], and its regularizer is evaluated on `reg_n` of them per step.
#' @param csv `NULL` or a file to write the table to, as CSV.
#' @param png `NULL` or a file to draw the accuracy-against-rotation plot in, as PNG.
#' @param verbose Show the training progress, then print the table.
#' @param device Where every model trains and is tested: `"auto"` (CUDA when
#'   available, else the CPU), `"cpu"`, `"cuda"`, `"cuda:1"` or `"mps"`.
#' @param workers,timeout,port Train every model data-parallel on `workers` local
#'   processes, as [fit_model()] does; the table is the same as from one process.
#' @return A data.frame of class `rotation_benchmark`, one row per model: `model`,
#'   `parameters`, `seconds_per_epoch`, `accuracy_0`, `accuracy_90`, ... (in
#'   `[0, 1]`; with `test = "d4"` then `accuracy_flip_0`, `accuracy_flip_90`, ...
#'   for the mirrored images), `invariance_error` (the mean relative change of
#'   the logits under the tested transformations other than the identity; 0 for
#'   an exactly invariant model) and `agreement` (the share of test images, in
#'   `[0, 1]`, given the same class at every tested rotation, and mirror with
#'   `test = "d4"`; 1 for an exactly invariant model). The trained
#'   models are in `attr(x, "models")`, the training histories in
#'   `attr(x, "histories")` and the recipe and data sizes in `attr(x, "settings")`.
#'   It has `print()` and `plot()` methods. With `verbose = TRUE` it is printed and
#'   returned invisibly.
#' @seealso [fit_model()], [evaluate_rotations()]
#' @export
#' @examples
#' if (equivariance_available()) {
#'   result <- rotation_benchmark(
#'     models = c("SimpleCNN", "C4CNN"), epochs = 1, root = "subset",
#'     limit = 256, test_limit = 200, verbose = FALSE
#'   )
#'   result
#'   plot(result)
#' }
rotation_benchmark <- function(models = c(
                                 "SimpleCNN", "SimpleCNN+aug", "SimpleCNN+reg", "EqCNN",
                                 "C4CNN", "EscnnC4CNN"
                               ),
                               epochs = 2, batch_size = 128, lr = 1e-3, seed = 0,
                               limit = NULL, test_limit = NULL, root = NULL, rotations = 0:3,
                               test = "c4",
                               reg_n = 64, reg_num_funcs = 1, reg_lambda = 1, reg_warmup = 0,
                               csv = NULL, png = NULL, verbose = TRUE, device = "auto",
                               workers = 1, timeout = 600, port = NULL, data = NULL,
                               labels = NULL) {
  # output paths are checked before the training (the core's rule), not after it
  if (!is.null(csv)) csv <- output_path(csv, "csv")
  if (!is.null(png)) png <- output_path(png, "png")
  if (!is.null(root)) root <- path.expand(check_string(root, "root"))
  args <- list(
    models = as_py_models(models, "models"),
    epochs = as_py_int(epochs, "epochs"),
    batch_size = as_py_int(batch_size, "batch_size"),
    lr = as_py_number(lr, "lr"),
    seed = as_py_int(seed, "seed"),
    root = root,
    limit = if (is.null(limit)) NULL else as_py_int(limit, "limit"),
    test_limit = if (is.null(test_limit)) NULL else as_py_int(test_limit, "test_limit"),
    rotations = as_py_quarter_turns(rotations, "rotations"),
    test = test,
    reg_n = as_py_int(reg_n, "reg_n"),
    reg_num_funcs = as_py_int(reg_num_funcs, "reg_num_funcs"),
    reg_lambda = as_py_number(reg_lambda, "reg_lambda"),
    reg_warmup = as_py_int(reg_warmup, "reg_warmup"),
    labels = if (is.null(labels)) NULL else as_py_int(labels, "labels"),
    csv = csv,
    verbose = as_py_flag(verbose, "verbose"),
    warn = FALSE,
    device = device,
    table = FALSE, # R prints its own table
    data = as_benchmark_data(data)
  )
  if (verbose && single_process(workers)) {
    args$progress <- benchmark_display(environment())
  }
  py <- call_with_workers("rotation_benchmark", args, workers, timeout, port)
  note_subset(py$settings[["source"]], root)
  result <- as_benchmark_table(py)
  if (!is.null(png)) {
    grDevices::png(png, width = 1600, height = 1000, res = 200)
    on.exit(grDevices::dev.off(), add = TRUE)
    plot(result)
  }
  if (verbose) {
    print(result)
    return(invisible(result))
  }
  result
}

#' The progress function of rotation_benchmark(): "model k/n" and an overall ETA in
#' the cli bar of fit_model() (see R/progress.R).
#' @noRd
benchmark_display <- function(envir) {
  counter <- benchmark_counter()
  fit_display <- cli_fit_display(envir, model = counter)
  function(event) {
    event <- as_r_value(event)
    if (identical(event[["event"]], "model")) {
      counter$next_model(event$model, event$index, event$models)
      inform(paste0("model ", event$index, " of ", event$models, ": ", event$model))
      return(NULL)
    }
    fit_display(event)
  }
}

#' The benchmark's rows as a data.frame, with the trained models and histories.
#' @noRd
as_benchmark_table <- function(py) {
  rows <- py$rows
  columns <- as.character(unlist(py$columns))
  table <- as.data.frame(
    lapply(stats::setNames(columns, columns), function(col) {
      values <- lapply(rows, `[[`, col)
      if (col == "model") as.character(unlist(values)) else as.numeric(unlist(values))
    }),
    stringsAsFactors = FALSE
  )
  table$parameters <- as.integer(table$parameters)
  histories <- py$histories
  structure(
    table,
    class = c("rotation_benchmark", "data.frame"),
    models = py$models,
    histories = lapply(histories, as_history),
    settings = py$settings
  )
}

#' @export
print.rotation_benchmark <- function(x, ...) {
  s <- attr(x, "settings")
  cat("<rotation_benchmark> Fashion-MNIST (", s$source, "), ", format(s$train_size, big.mark = ","),
    " training and ", format(s$test_size, big.mark = ","), " test images; ",
    s$epochs, " epoch(s), batch ", s$batch_size, ", Adam lr ", format(s$lr), ", seed ", s$seed, "\n",
    sep = ""
  )
  shown <- as.data.frame(x)
  acc <- grep("^accuracy_", names(shown))
  shown[acc] <- lapply(shown[acc], function(a) round(100 * a, 1))
  # acc0% ... acc270%, then flip0% ... flip270% for the mirrored images
  names(shown)[acc] <- paste0(sub("^accuracy_(flip_)?", "", names(shown)[acc]), "%")
  names(shown)[acc] <- ifelse(grepl("^accuracy_flip_", names(x)[acc]),
    paste0("flip", names(shown)[acc]), paste0("acc", names(shown)[acc])
  )
  shown$seconds_per_epoch <- round(shown$seconds_per_epoch, 1)
  shown$invariance_error <- format(signif(shown$invariance_error, 2))
  if (!is.null(shown$agreement)) shown$agreement <- round(100 * shown$agreement, 1)
  names(shown)[match(c("parameters", "seconds_per_epoch", "invariance_error"), names(shown))] <-
    c("params", "s/epoch", "inv.error")
  names(shown)[names(shown) == "agreement"] <- "agree%"
  print(shown, row.names = FALSE)
  invisible(x)
}

#' Plot a rotation benchmark
#'
#' Test accuracy against the rotation (and mirror) of the test images, one line
#' per model. Every model stays visible when lines coincide (models built to be
#' invariant often have the same accuracy): each has its own marker and line type,
#' and the lines are shifted sideways by a small offset. A dashed line marks the
#' chance level (100 / number of classes); the subtitle gives the data sizes, the
#' epochs and the seed.
#'
#' @param x A result of [rotation_benchmark()].
#' @param y Unused.
#' @param main The title.
#' @param ... Passed to [graphics::matplot()].
#' @return `x`, invisibly.
#' @seealso [rotation_benchmark()]
#' @export
#' @examples
#' if (equivariance_available()) {
#'   result <- rotation_benchmark(
#'     models = c("SimpleCNN", "C4CNN"), epochs = 1, root = "subset",
#'     limit = 128, test_limit = 100, verbose = FALSE
#'   )
#'   plot(result)
#' }
plot.rotation_benchmark <- function(x, y, main = "Test accuracy of models trained on upright images", ...) {
  acc <- grep("^accuracy_", names(x))
  labels <- sub("^accuracy_", "", names(x)[acc])
  mirrored <- any(startsWith(labels, "flip_"))
  # with mirrors (test = "d4") the 8 test sets sit side by side, named
  at <- if (mirrored) seq_along(labels) else as.numeric(labels)
  values <- t(100 * as.matrix(as.data.frame(x)[acc]))
  n <- nrow(x)
  # a small sideways offset per model: coinciding lines stay apart
  step <- if (length(at) > 1) min(diff(at)) else 1
  shift <- (seq_len(n) - (n + 1) / 2) * step * 0.04
  xs <- outer(at, shift, `+`)
  colours <- grDevices::hcl.colors(n, "Dark 3")
  pch <- rep_len(c(19, 17, 15, 1, 2, 0, 5, 6, 8), n)
  lty <- rep_len(1:6, n)
  xlab <- if (mirrored) {
    "rotation (degrees) of the test images, then of the mirrored ones"
  } else {
    "rotation of the test images (degrees)"
  }
  legend <- x$model
  if (!is.null(x$agreement)) legend <- sprintf("%s (agreement %.1f%%)", x$model, 100 * x$agreement)
  legend <- c(legend, "chance")
  # the legend goes in a right margin, where it hides no line, wide enough for its text
  width <- max(graphics::strwidth(legend, units = "inches", cex = 0.8)) / graphics::par("csi")
  old <- graphics::par(mar = c(5.1, 4.1, 4.1, 3 + width))
  on.exit(graphics::par(old), add = TRUE)
  graphics::matplot(xs, values,
    type = "b", lty = lty, pch = pch, col = colours, xaxt = "n", ylim = c(0, 100),
    xlab = xlab, ylab = "test accuracy (%)", main = main, ...
  )
  graphics::mtext(benchmark_subtitle(attr(x, "settings")), side = 3, line = 0.3, cex = 0.8)
  graphics::axis(1,
    at = at, labels = sub("^flip_", "flip ", labels), cex.axis = if (mirrored) 0.7 else 1
  )
  chance <- 100 / benchmark_classes(attr(x, "settings"))
  graphics::abline(h = chance, lty = 2, col = "grey50")
  usr <- graphics::par("usr")
  graphics::legend(usr[2] + 0.02 * diff(usr[1:2]), usr[4], legend,
    col = c(colours, "grey50"), lty = c(lty, 2), pch = c(pch, NA), bty = "n", cex = 0.8,
    xpd = TRUE
  )
  invisible(x)
}

#' "60,000 training / 10,000 test images, 2 epochs, seed 0".
#' @noRd
benchmark_subtitle <- function(s) {
  if (is.null(s)) {
    return("")
  }
  paste0(
    format(s$train_size, big.mark = ","), " training / ", format(s$test_size, big.mark = ","),
    " test images, ", s$epochs, " epoch", if (s$epochs != 1) "s", ", seed ", s$seed
  )
}

benchmark_classes <- function(s) {
  k <- s$num_classes
  if (is.null(k)) 10 else as.numeric(k)
}

#' `data` of rotation_benchmark(): NULL, or list(train, test) of data as fit_model()
#' takes -> a Python pair.
#' @noRd
as_benchmark_data <- function(data) {
  if (is.null(data)) {
    return(NULL)
  }
  if (!is.list(data) || inherits(data, c("equivariance_dataset", "equivariance_image_data")) ||
    length(data) != 2) {
    arg_error("data", "NULL or list(train, test) of data as fit_model() takes", describe(data))
  }
  train <- as_fit_data(data[[1]], "data[[1]]")
  test <- as_fit_data(data[[2]], "data[[2]]")
  reticulate::tuple(train$py, test$py)
}
