#' Equivariance regularizer
#'
#' **When to use it.** An exactly equivariant network ([c4_cnn()], [d4_cnn()],
#' [escnn_cnn()]) when the symmetry is exact and a group layer exists for it: it
#' is invariant by construction (in the README's benchmark C4CNN scores 87.8% at
#' every quarter turn and gives every test image the same class at all four). The
#' regularizer to make an *existing* architecture consistent under a transform
#' (with the benchmark's recipe, over seeds 0-2, 85.1% of the test images keep their
#' class at all four quarter turns, against 70.3% with augmentation alone, at 70.0%
#' against 70.5% accuracy), for transforms without an exact layer (continuous angles with
#' [transform_rotate()], small shifts), for a soft symmetry (`epsilon` tolerates an
#' error up to that size), and to use unlabeled images (`fit_model(unlabeled_data
#' = )`: the term needs no labels; with 1,000 labels and 59,000 unlabeled images,
#' agreement 84.9% against 72.1%, but accuracy 1 point below augmentation).
#' Augmentation (`fit_model(augment = transform_random_rot90())`) is the cheap
#' baseline: no extra cost per step, but its answer still changes with the angle
#' for 30% of the test images.
#' See `vignette("regularizer")` and the README's tables.
#'
#' Creates a loss term that pushes `model` towards equivariance (or invariance) with
#' respect to the given transforms:
#' \deqn{\sum_t \lambda_t \max(0, E_t - \epsilon_t),}{sum_t lambda_t * max(0, E_t - epsilon_t),}
#' summed over `num_funcs` transforms drawn at random, where \eqn{E_t} is the mean
#' over points \eqn{v} of `dist(f_out(model(v)), model(f_in(v)))`.
#'
#' The result is an R function: `reg()` evaluates the term at `n` points drawn
#' uniformly inside `bounds`, `reg(x)` at the points `x` (an R array of dimension
#' `c(N, shape)` or a torch tensor), without changing any setting. It returns a
#' 0-dimensional torch tensor that carries gradients to the model: add it to the
#' training loss (`loss + reg()`) before calling `backward()`.
#'
#' The model is evaluated deterministically (in eval mode by default: dropout off,
#' batch norm with running statistics); its buffers and training flags are left as
#' they were. The untransformed and all transformed points go through the model in
#' one batched forward pass.
#'
#' @param model A torch `nn.Module` (or any function on batched tensors).
#' @param shape Shape of one input sample, without the batch dimension, e.g.
#'   `c(1, 28, 28)`.
#' @param transforms A list of transforms. Each is `list(f_out, f_in, epsilon,
#'   lambda)` (also with those names), or `list(f, epsilon, lambda)` when input and
#'   output use the same function `f`. Functions are [transforms] or R functions of a
#'   tensor; `epsilon` (a threshold) and `lambda` (a weight) are non-negative numbers.
#' @param dist Distance between `a = f_out(model(v))` and `b = model(f_in(v))`,
#'   computed per sample and averaged over the points. Every named distance is 0
#'   exactly when the two outputs agree, so the model is equivariant exactly when the
#'   term vanishes (with `epsilon = 0`); see the table in Details. An R
#'   `function(a, b)` must return a tensor (or number) holding a scalar or one value
#'   per sample; `NA` or `NaN` is an error.
#' @param n Number of points sampled when `reg()` is called without points.
#' @param num_funcs Number of transforms drawn per call (without replacement when
#'   `num_funcs <= length(transforms)`).
#' @param bounds Sampling bounds: `c(lower, upper)`, `list(lower = , upper = )` with
#'   numbers or arrays of dimension `shape`, or an array whose last dimension is 2.
#' @param mode `"eval"` (default) evaluates the model in eval mode; `"train"` keeps
#'   batch norm in training mode (normalizing with the regularizer's batch) but still
#'   switches dropout off.
#' @param chunk_size Largest batch given to the model at once (`NULL`: one pass).
#' @details
#' \tabular{lll}{
#'   `dist` \tab outputs \tab value per sample; 0 exactly when \cr
#'   a number `p >= 1` \tab any \tab \eqn{\|a - b\|_p}{||a - b||_p} over all entries; `a == b` \cr
#'   `Inf` or `"inf"` \tab any \tab \eqn{\max |a - b|}{max |a - b|}; `a == b` \cr
#'   `"cross_entropy"` \tab probabilities along the class dimension (the second) \tab
#'     \eqn{\|\log a - \log b\|_2}{||log a - log b||_2} with a safe log (a zero
#'     probability counts as the smallest normal number, not as \eqn{\log 0 = 0}{log 0 = 0});
#'     `a == b` \cr
#'   `"cross_entropy_logits"` \tab logits along that dimension \tab
#'     \eqn{\|\mathrm{log\_softmax}(a) - \mathrm{log\_softmax}(b)\|_2}{||log_softmax(a) - log_softmax(b)||_2};
#'     `softmax(a) == softmax(b)` \cr
#'   `"kl_logits"` \tab logits \tab symmetric Kullback-Leibler divergence
#'     \eqn{KL(p \| q) + KL(q \| p)}{KL(p||q) + KL(q||p)} between \eqn{p = softmax(a)},
#'     \eqn{q = softmax(b)}; `p == q` \cr
#'   `"kl_logits_target"` \tab logits \tab one-sided Kullback-Leibler divergence
#'     \eqn{KL(p \| q)}{KL(p||q)} with \eqn{p = softmax(a)} held fixed (no gradient
#'     flows into `a`): `model(f_in(v))` is pulled towards `f_out(model(v))`, the
#'     consistency loss of semi-supervised learning; `p == q` \cr
#'   `"js_logits"` \tab logits \tab Jensen-Shannon divergence
#'     \eqn{(KL(p \| m) + KL(q \| m)) / 2}{(KL(p||m) + KL(q||m)) / 2}, \eqn{m = (p + q) / 2}
#'     (at most \eqn{\log 2}{log 2}); `p == q` \cr
#'   `function(a, b)` \tab any \tab its value (a scalar, or one value per sample, then averaged)
#' }
#' The two cross-entropy names compute, on outputs of dimension `c(N, C)`, the same
#' values as the reference Python package `equivariance-regularizer` 0.1.1, except
#' for the safe log. `"kl_logits"` and `"js_logits"` are real divergences: use them
#' when the outputs are class scores and you want an information-theoretic measure.
#'
#' @return An object of class `equivariance_regularizer`: a function `reg(x = NULL)`.
#' @seealso [equivariance_errors()], [transforms]
#' @export
#' @examples
#' if (equivariance_available()) {
#'   torch <- reticulate::import("torch")
#'   nn <- torch$nn
#'   model <- nn$Sequential(
#'     nn$Conv2d(1L, 4L, 3L), nn$ReLU(), nn$AdaptiveAvgPool2d(1L),
#'     nn$Flatten(), nn$Linear(4L, 10L)
#'   )
#'   reg <- equivariance_regularizer(
#'     model, shape = c(1, 28, 28),
#'     transforms = list(list(transform_rot90(1), 0, 1), list(transform_hflip(), 0, 1)),
#'     n = 8, num_funcs = 2
#'   )
#'   reg
#'   value <- reg()
#'   value$backward()
#'   equivariance_errors(reg)
#' }
equivariance_regularizer <- function(model, shape, transforms, dist = 2, n = 1,
                                     num_funcs = 1, bounds = c(0, 1),
                                     mode = c("eval", "train"), chunk_size = NULL) {
  mode <- default_choice(mode, c("eval", "train"))
  model <- as_py_callable(model, "model")
  py <- r_transform_index(call_py(core()$EquivarianceRegularizer(
    model,
    shape = as_py_shape(shape, "shape"),
    transforms = as_py_transforms(transforms),
    dist = regularizer_dist(dist),
    n = as_py_int(n, "n"),
    num_funcs = as_py_int(num_funcs, "num_funcs"),
    bounds = as_py_bounds(bounds, "bounds"),
    mode = mode,
    chunk_size = if (is.null(chunk_size)) NULL else as_py_int(chunk_size, "chunk_size")
  )))
  reg <- function(x = NULL) {
    call_py(py(regularizer_points(x)))
  }
  structure(reg, class = c("equivariance_regularizer", "function"), py = py)
}

# Distance names are checked by the core, whose message lists every accepted name.
# An R function is wrapped so that an NA it returns reaches the core as NaN (which
# the core rejects, naming `dist`) rather than as True, which is how reticulate
# passes a logical NA and which would count as a distance of 1.
regularizer_dist <- function(dist) {
  if (is.character(dist) && length(dist) == 1 && !is.na(dist)) {
    return(dist)
  }
  if (is_r_function(dist)) {
    return(py_function(na_as_nan(dist)))
  }
  as_py_dist(dist)
}

#' Evaluate `expr`; in the core's messages, Python's 0-based `transforms[i]` becomes
#' R's 1-based `transforms[[i + 1]]`, the index the R user wrote.
#' @noRd
r_transform_index <- function(expr) {
  tryCatch(expr, equivariance_error = function(e) {
    m <- gregexpr("transforms\\[[0-9]+\\]", e$message)
    regmatches(e$message, m) <- lapply(regmatches(e$message, m), function(hits) {
      sprintf("transforms[[%d]]", as.integer(gsub("\\D", "", hits)) + 1L)
    })
    stop(e)
  })
}

na_as_nan <- function(fn) {
  force(fn)
  function(a, b) {
    value <- fn(a, b)
    if (is.logical(value) && length(value) > 0 && all(is.na(value))) value <- as.double(value)
    value
  }
}

regularizer_points <- function(x) {
  if (is.null(x)) NULL else as_py_tensor(x, "x", dtype = "float64")
}

check_regularizer <- function(reg, arg = "reg") {
  if (!inherits(reg, "equivariance_regularizer")) {
    arg_error(arg, "a regularizer made by equivariance_regularizer()", describe(reg))
  }
  attr(reg, "py")
}

#' Raw equivariance errors of every transform
#'
#' Evaluates, for each transform of a regularizer, the mean distance `E` between
#' `f_out(model(v))` and `model(f_in(v))`, without threshold, weight or gradient:
#' the quantity to monitor while training.
#'
#' Without `x`, the result is a fresh Monte Carlo estimate on the regularizer's `n`
#' points drawn at random inside its bounds (uniform noise images, for bounds
#' `c(0, 1)`): it changes from call to call (seed torch's generator with
#' [set_seed()] to repeat one), and says how the model behaves on random inputs,
#' not on your data. To measure the model where it matters, give the points: a
#' batch of real images, e.g. `equivariance_errors(reg, as.array(test)[1:500, , , ,
#' drop = FALSE])`, or a tensor; for a classifier's agreement across quarter turns
#' on labelled test data, see [evaluate_rotations()].
#'
#' @param reg A regularizer made by [equivariance_regularizer()].
#' @param x Points (an R array of dimension `c(N, shape)` or a tensor); `NULL`
#'   samples `n` fresh points inside the regularizer's bounds (a new random
#'   estimate at every call).
#' @return A data.frame with columns `transform` (a label) and `error`.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   torch <- reticulate::import("torch")
#'   model <- torch$nn$Conv2d(1L, 1L, 3L, padding = 1L)
#'   reg <- equivariance_regularizer(model, c(1, 8, 8),
#'     list(list(transform_rot90(1), 0, 1), list(transform_vflip(), 0, 1)), n = 4)
#'   equivariance_errors(reg) # on n = 4 random points: changes between calls
#'   # on data: the same images give the same errors at every call
#'   test <- fashion_mnist("test", limit = 50, root = "subset")
#'   crops <- as.array(test)[, , 11:18, 11:18, drop = FALSE] # 8 x 8 crops
#'   equivariance_errors(reg, crops)
#' }
equivariance_errors <- function(reg, x = NULL) {
  py <- check_regularizer(reg)
  errors <- call_py(py$errors(regularizer_points(x)))
  data.frame(
    transform = as.character(unlist(py$labels)),
    error = as.numeric(as_r_array(errors)),
    stringsAsFactors = FALSE
  )
}

#' @export
print.equivariance_regularizer <- function(x, ...) {
  py <- attr(x, "py")
  labels <- unlist(py$labels)
  specs <- py$transforms
  cat("<equivariance_regularizer>\n")
  cat("  model:     ", class(py$model)[1], "\n", sep = "")
  cat("  shape:     ", paste(unlist(py$shape), collapse = " x "), "\n", sep = "")
  cat("  dist:      ", format(py$dist), "\n", sep = "")
  cat("  n:         ", py$n, " points per call\n", sep = "")
  cat("  num_funcs: ", py$num_funcs, " of ", length(labels), " transforms per call\n", sep = "")
  cat("  mode:      ", py$mode, "\n", sep = "")
  cat("  transforms:\n")
  for (i in seq_along(labels)) {
    spec <- specs[[i]]
    cat(sprintf("    %d. %s (epsilon = %g, lambda = %g)\n", i, labels[i], spec$epsilon, spec$lambda_eq))
  }
  invisible(x)
}
