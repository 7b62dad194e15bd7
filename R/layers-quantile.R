# Quantile-map normalization layers (the core's quantile_maps/ package). Each
# wrapper is one call of core_call() (R/core-call.R); the core checks every value.

#' Quantile-map normalization layers
#'
#' Normalization layers that map each group of activations onto a whole target
#' distribution by 1-D optimal transport (quantile to quantile),
#' `y = Q(F(x)) * weight + bias`, instead of only matching mean and variance.
#' `group_map()`, `layer_map()` and `instance_map()` are drop-in replacements for
#' PyTorch's `nn.GroupNorm`, `nn.LayerNorm` and `nn.InstanceNorm*d`; they return the
#' Python (torch) modules, to be used in models built from R or Python.
#'
#' Within each group the output is monotone in the input, tied inputs map to equal
#' outputs, and (with `method = "exact"`) the sorted outputs are the target's
#' quantiles at the plotting positions. With `grad = "transport"` gradients reach
#' earlier layers through the derivative of the transport map (about `1 / sigma` for
#' Gaussian data and a Gaussian target); `grad = "none"` blocks them, as the reference
#' implementation does. With `track_running_stats = TRUE`, eval mode maps each sample
#' through running quantile estimates, independently of the rest of the batch;
#' otherwise eval mode uses the batch, like training mode.
#'
#' Every finite input gives a finite output and a finite gradient (a derivative too
#' large for the input's type, as for values a few subnormal steps apart, is
#' clamped to the type's largest number). Infinite inputs (torch tensors may hold
#' them; R arrays with `Inf` are refused) are ordered beyond every finite value:
#' `Inf` gets the largest output the map gives and `-Inf` the smallest, both finite,
#' with zero gradient. `NaN` is an error.
#'
#' A target function must return a number for every probability in (0, 1); `NA`,
#' `NaN` or infinite values are an error naming `target`. Save a trained map with
#' `torch$save(m$state_dict(), path)` and load the weights into a map built with
#' the same target: a map whose target is an R function cannot be saved whole
#' (`torch$save(m, path)` says so).
#'
#' @param num_groups Number of groups the channels are divided into (a whole number).
#' @param num_channels Number of channels of the input (a whole number divisible by
#'   `num_groups`).
#' @param target The target distribution: `"gaussian"`, `"uniform"` (on \[0, 1\]),
#'   `"cauchy"`, `"laplace"`, `"logistic"`, `"sparse"`, or an R `function(q)` that
#'   returns the target's quantiles for a vector of probabilities `q` in (0, 1) (for
#'   example `function(q) qexp(q)`); it must return one non-decreasing value per
#'   probability.
#' @param affine,elementwise_affine Learn a `weight` and `bias` (per channel, or
#'   elementwise for `layer_map()`).
#' @param eps Standard deviation of Gaussian noise added before ranking (0: none).
#' @param method `"exact"` (one sort per group) or `"sketch"` (a fast histogram
#'   approximation for large groups, within 0.01 in Kolmogorov distance of the exact
#'   output on Gaussian, uniform and Cauchy data).
#' @param positions `"midpoint"` (`(i + 0.5) / n`) or `"linspace"` (`i / (n - 1)`,
#'   the reference implementation's).
#' @param grad `"transport"` or `"none"` (see Details).
#' @param track_running_stats Keep running quantile estimates and use them in eval
#'   mode.
#' @param momentum Weight of each batch in the running estimates, a number in
#'   \[0, 1\], or `NULL` for a cumulative average.
#' @param num_knots Number of running quantile knots.
#' @param dtype `NULL`, `"float32"` or `"float64"`: the type of the parameters.
#' @return A Python `torch.nn.Module` (`GroupMap`, `LayerMap` or `InstanceMap`) that
#'   maps tensors of shape `(N, C, ...)` (for `layer_map()`, tensors ending with
#'   `normalized_shape`).
#' @export
#' @examples
#' if (equivariance_available()) {
#'   gm <- group_map(2, 4, target = "uniform")
#'   torch <- reticulate::import("torch")
#'   y <- gm(torch$randn(3L, 4L, 5L, 5L))
#'   y$shape
#' }
group_map <- function(num_groups, num_channels, target = "gaussian", affine = TRUE,
                      eps = 0, method = "exact", positions = "midpoint",
                      grad = "transport", track_running_stats = FALSE, momentum = 0.1,
                      num_knots = 65, dtype = NULL) {
  core_call(core()$GroupMap)
}

#' @rdname group_map
#' @param normalized_shape The trailing shape of the input, e.g. `c(16, 28, 28)`.
#' @param bias With `elementwise_affine`, also learn a bias.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   lm <- layer_map(c(4, 5, 5), target = function(q) qnorm(q, sd = 2))
#'   lm
#' }
layer_map <- function(normalized_shape, target = "gaussian", elementwise_affine = TRUE,
                      bias = TRUE, eps = 0, method = "exact", positions = "midpoint",
                      grad = "transport", track_running_stats = FALSE, momentum = 0.1,
                      num_knots = 65, dtype = NULL) {
  core_call(core()$LayerMap)
}

#' @rdname group_map
#' @param num_features Number of channels of the input (a whole number).
#' @export
#' @examples
#' if (equivariance_available()) {
#'   im <- instance_map(4, track_running_stats = TRUE)
#'   im$running_quantiles$shape
#' }
instance_map <- function(num_features, target = "gaussian", affine = FALSE, eps = 0,
                         method = "exact", positions = "midpoint", grad = "transport",
                         track_running_stats = FALSE, momentum = 0.1, num_knots = 65,
                         dtype = NULL) {
  core_call(core()$InstanceMap)
}
