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
#'
#' Any R `function(x)` taking and returning a torch tensor can be used in their place.
#'
#' @param k Number of quarter turns, a whole number (taken modulo 4).
#' @param per_sample Draw one rotation per sample (`TRUE`) or one per batch.
#' @param dx,dy Shifts in pixels, whole numbers.
#' @return A Python callable transform.
#' @name transforms
#' @examples
#' if (equivariance_available()) {
#'   torch <- reticulate::import("torch")
#'   x <- torch$arange(4)$reshape(c(1L, 1L, 2L, 2L))
#'   transform_rot90(1)(x)
#'   transform_translate(1, 0)(x)
#' }
NULL

#' @rdname transforms
#' @export
transform_identity <- function() {
  core()$transforms$identity
}

#' @rdname transforms
#' @export
transform_rot90 <- function(k = 1) {
  core()$transforms$rot90(as_py_int(k, "k", min = -Inf))
}

#' @rdname transforms
#' @export
transform_hflip <- function() {
  core()$transforms$hflip()
}

#' @rdname transforms
#' @export
transform_vflip <- function() {
  core()$transforms$vflip()
}

#' @rdname transforms
#' @export
transform_random_rot90 <- function(per_sample = TRUE) {
  if (!is.logical(per_sample) || length(per_sample) != 1 || is.na(per_sample)) {
    arg_error("per_sample", "TRUE or FALSE", describe(per_sample))
  }
  core()$transforms$random_rot90(per_sample)
}

#' @rdname transforms
#' @export
transform_translate <- function(dx = 1, dy = 0) {
  core()$transforms$translate(as_py_int(dx, "dx", min = -Inf), as_py_int(dy, "dy", min = -Inf))
}
