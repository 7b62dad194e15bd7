#' Transforms for the equivariance regularizer
#'
#' Geometric transforms acting on the last two dimensions (height, width) of a
#' batched tensor. A tensor with fewer than three dimensions, such as a classifier's
#' logits, is returned unchanged, so `list(transform_rot90(1), 0, 1)` asks a
#' classifier for invariance and an image-to-image model for equivariance.
#'
#' * `transform_identity()` leaves tensors unchanged.
#' * `transform_rot90(k)` rotates by `k` quarter turns (counterclockwise, as
#'   `torch.rot90` on the last two dimensions).
#' * `transform_hflip()` mirrors the width, `transform_vflip()` the height.
#' * `transform_random_rot90()` rotates each sample by a random number of quarter
#'   turns, drawn from torch's generator (so `torch$manual_seed()` makes it
#'   reproducible); the regularizer applies the same draw to input and output.
#' * `transform_translate(dx, dy)` shifts cyclically by `dx` pixels along the width
#'   and `dy` along the height.
#' * `transform_rotate(degrees)` rotates by any angle, counterclockwise (the direction
#'   of `transform_rot90(1)`), about the image centre, by bilinear resampling; pixels
#'   that come from outside the image are 0. `transform_rotate(90)` equals
#'   `transform_rot90(1)` on square images up to float rounding.
#' * `transform_random_rotate(max_degrees)` rotates by an angle drawn uniformly in
#'   `[-max_degrees, max_degrees]` (one per sample, or one per batch with
#'   `per_sample = FALSE`); like `transform_random_rot90()`, the regularizer's form
#'   `list(f, epsilon, lambda)` rotates input and output by the same angles.
#'   The two continuous rotations need floating-point tensors.
#'
#' Any R `function(x)` taking and returning a torch tensor can be used in their place.
#'
#' @param k Number of quarter turns, a whole number (taken modulo 4).
#' @param per_sample Draw one rotation per sample (`TRUE`) or one per batch (`FALSE`).
#' @param dx,dy Shifts in pixels, whole numbers.
#' @param degrees Angle in degrees, a finite number (positive: counterclockwise).
#' @param max_degrees Largest angle in degrees, a non-negative finite number.
#' @return A Python callable transform.
#' @name transforms
#' @examples
#' if (equivariance_available()) {
#'   torch <- reticulate::import("torch")
#'   x <- torch$arange(4)$reshape(c(1L, 1L, 2L, 2L))
#'   transform_rot90(1)(x)
#'   transform_translate(1, 0)(x)
#'   img <- torch$rand(c(2L, 1L, 8L, 8L))
#'   transform_rotate(30)(img)$shape
#'   torch$manual_seed(1L)
#'   transform_random_rotate(15)(img)$shape
#' }
NULL

#' @rdname transforms
#' @export
transform_identity <- function() call_py(core()$transforms$identity)

#' @rdname transforms
#' @export
transform_rot90 <- function(k = 1) core_call(core()$transforms$rot90)

#' @rdname transforms
#' @export
transform_hflip <- function() core_call(core()$transforms$hflip)

#' @rdname transforms
#' @export
transform_vflip <- function() core_call(core()$transforms$vflip)

#' @rdname transforms
#' @export
transform_random_rot90 <- function(per_sample = TRUE) core_call(core()$transforms$random_rot90)

#' @rdname transforms
#' @export
transform_translate <- function(dx = 1, dy = 0) core_call(core()$transforms$translate)

#' @rdname transforms
#' @export
transform_rotate <- function(degrees) core_call(core()$transforms$rotate)

#' @rdname transforms
#' @export
transform_random_rotate <- function(max_degrees, per_sample = TRUE) core_call(core()$transforms$random_rotate)
