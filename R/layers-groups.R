# Group layers on the pixel grid (plain PyTorch, from the core's groups/ package):
# C4, the 4 rotations by multiples of 90 degrees, and D4, the same rotations with
# and without a left-right mirror (the 8 symmetries of the square). A regular
# field is |G| consecutive channels (4 for C4, 8 for D4) in the order of escnn's
# regular representation. Each wrapper is one call of core_call() (R/core-call.R),
# which converts its arguments by the table of R/arg-transformers.R; every rule on
# them is the core's. One help page per kind of layer documents both groups.

#' Lifting convolution: images to regular C4 or D4 fields
#'
#' A convolution whose output is exactly equivariant to the group: C4
#' (`c4_lifting_conv2d()`, rotations by multiples of 90 degrees) or D4
#' (`d4_lifting_conv2d()`, the same rotations with or without a mirror). Each of
#' the `out_fields` output fields has one channel per group element (4 for C4, 8
#' for D4) in the order of escnn's regular representation of `rot2d_on_r2(4)` or
#' `flip_rot2d_on_r2(4)` (`rot0`, `rot90`, `rot180`, `rot270`, then for D4
#' `flip_rot0`, ..., `flip_rot270`, where `flip_` means a left-right mirror
#' first): transforming the input transforms every output map and permutes each
#' field's channels as that representation does (for C4, a cyclic shift). One
#' filter per output field and input channel is learnt; the layer applies its
#' transformed copies.
#'
#' The expanded filter is computed from the current weights on every call (also in
#' evaluation mode), so any update of the weights, even through `$data`, shows in
#' the next output; a module saved whole with `torch$save()` holds its weights, not
#' the expanded filter.
#'
#' @param in_channels Number of input channels (whole number).
#' @param out_fields Number of regular output fields; the output has
#'   `4 * out_fields` (C4) or `8 * out_fields` (D4) channels.
#' @param kernel_size Side of the square filter.
#' @param stride Convolution stride.
#' @param padding Zero padding on every side.
#' @param bias `TRUE` or `FALSE`: learn one bias per output field (shared by its
#'   channels).
#' @return A Python torch module (`C4LiftingConv2d` or `D4LiftingConv2d`) mapping
#'   tensors of shape `(N, in_channels, H, W)` to `(N, |G| * out_fields, H', W')`.
#'   Its `export()` method returns a plain `nn.Conv2d` giving the same output.
#' @seealso [group_conv2d], [check_equivariance()], [c4_cnn()], [d4_cnn()]
#' @name group_lifting_conv2d
#' @examples
#' if (equivariance_available()) {
#'   x <- as_tensor(array(rnorm(2 * 16 * 16), c(2, 1, 16, 16)))
#'   print(dim(as.array(c4_lifting_conv2d(1, 3, kernel_size = 3)(x)))) # 2 12 14 14
#'   dim(as.array(d4_lifting_conv2d(1, 2, kernel_size = 3)(x))) # 2 16 14 14
#' }
NULL

#' @rdname group_lifting_conv2d
#' @export
c4_lifting_conv2d <- function(in_channels, out_fields, kernel_size, stride = 1, padding = 0, bias = TRUE) core_call(core()$C4LiftingConv2d)

#' @rdname group_lifting_conv2d
#' @export
d4_lifting_conv2d <- function(in_channels, out_fields, kernel_size, stride = 1, padding = 0, bias = TRUE) core_call(core()$D4LiftingConv2d)

#' Group convolution between regular C4 or D4 fields
#'
#' A convolution from `in_fields` regular fields to `out_fields` regular fields
#' of C4 (`c4_conv2d()`, 4 channels per field) or D4 (`d4_conv2d()`, 8 channels
#' per field) that is exactly equivariant to the group: transforming the input
#' maps and permuting each field's channels does the same to the output.
#'
#' @inheritParams group_lifting_conv2d
#' @param in_fields Number of regular input fields; the input has
#'   `4 * in_fields` (C4) or `8 * in_fields` (D4) channels.
#' @return A Python torch module (`C4Conv2d` or `D4Conv2d`) mapping
#'   `(N, |G| * in_fields, H, W)` to `(N, |G| * out_fields, H', W')`, with an
#'   `export()` method returning the equivalent plain `nn.Conv2d`.
#' @seealso [group_lifting_conv2d], [check_equivariance()]
#' @name group_conv2d
#' @examples
#' if (equivariance_available()) {
#'   print(c4_conv2d(3, 2, kernel_size = 3, padding = 1))
#'   x <- as_tensor(array(rnorm(16 * 6 * 6), c(1, 16, 6, 6)))
#'   dim(as.array(d4_conv2d(2, 3, kernel_size = 3, padding = 1)(x))) # 1 24 6 6
#' }
NULL

#' @rdname group_conv2d
#' @export
c4_conv2d <- function(in_fields, out_fields, kernel_size, stride = 1, padding = 0, bias = TRUE) core_call(core()$C4Conv2d)

#' @rdname group_conv2d
#' @export
d4_conv2d <- function(in_fields, out_fields, kernel_size, stride = 1, padding = 0, bias = TRUE) core_call(core()$D4Conv2d)

#' Batch normalisation of regular C4 or D4 fields
#'
#' Like `nn.BatchNorm2d`, but the mean, variance, scale and shift of a field are
#' shared by its channels (4 for C4, 8 for D4; escnn's `InnerBatchNorm`), so the
#' layer commutes with the group's rotations (and mirrors).
#'
#' @param num_fields Number of regular fields (`4 * num_fields` or
#'   `8 * num_fields` channels).
#' @param eps Added to the variance for numerical stability (a finite number >= 0).
#' @param momentum Weight of each batch in the running statistics, a number in
#'   \[0, 1\], or `NULL` for a cumulative average.
#' @return A Python torch module (`C4BatchNorm2d` or `D4BatchNorm2d`).
#' @seealso [group_conv2d]
#' @name group_batch_norm2d
#' @examples
#' if (equivariance_available()) {
#'   print(c4_batch_norm2d(8))
#'   d4_batch_norm2d(4, momentum = NULL)
#' }
NULL

#' @rdname group_batch_norm2d
#' @export
c4_batch_norm2d <- function(num_fields, eps = 1e-5, momentum = 0.1) core_call(core()$C4BatchNorm2d)

#' @rdname group_batch_norm2d
#' @export
d4_batch_norm2d <- function(num_fields, eps = 1e-5, momentum = 0.1) core_call(core()$D4BatchNorm2d)

#' Pool regular C4 or D4 fields over their channels
#'
#' Reduces each regular field's channels (4 for C4, 8 for D4) to one channel by
#' their maximum or mean: the result only rotates (and mirrors) with the input,
#' with no channel permutation, so after spatial pooling it is invariant.
#'
#' @param mode `"max"` or `"mean"`.
#' @return A Python torch module (`C4GroupPool` or `D4GroupPool`) mapping
#'   `(N, |G| * F, ...)` to `(N, F, ...)`.
#' @seealso [group_max_pool2d] for spatial pooling
#' @name group_pool
#' @examples
#' if (equivariance_available()) {
#'   x <- as_tensor(array(rnorm(8 * 5 * 5), c(1, 8, 5, 5)))
#'   print(dim(as.array(c4_group_pool("mean")(x)))) # 1 2 5 5
#'   dim(as.array(d4_group_pool()(x))) # 1 1 5 5
#' }
NULL

#' @rdname group_pool
#' @export
c4_group_pool <- function(mode = "max") core_call(core()$C4GroupPool)

#' @rdname group_pool
#' @export
d4_group_pool <- function(mode = "max") core_call(core()$D4GroupPool)

#' Spatial max pooling that keeps C4 or D4 equivariance
#'
#' A stride-2 max pooling that commutes with the group's rotations (and mirrors)
#' for odd and even image sizes alike: a 2-wide window on an even side, a 3-wide
#' one with padding 1 on an odd side (a plain 2x2 pooling drops the last row of
#' an odd side, which breaks equivariance). `c4_max_pool2d()` and
#' `d4_max_pool2d()` compute the same maps; each declares its group's action for
#' [check_equivariance()].
#'
#' @return A Python torch module (`C4MaxPool2d` or `D4MaxPool2d`) mapping
#'   `(N, C, H, W)` to `(N, C, ceiling(H / 2), ceiling(W / 2))`.
#' @seealso [group_pool]
#' @name group_max_pool2d
#' @examples
#' if (equivariance_available()) {
#'   x <- as_tensor(array(rnorm(8 * 5 * 5), c(1, 8, 5, 5)))
#'   print(dim(as.array(c4_max_pool2d()(x)))) # 1 8 3 3
#'   dim(as.array(d4_max_pool2d()(x))) # 1 8 3 3
#' }
NULL

#' @rdname group_max_pool2d
#' @export
c4_max_pool2d <- function() core_call(core()$C4MaxPool2d)

#' @rdname group_max_pool2d
#' @export
d4_max_pool2d <- function() core_call(core()$D4MaxPool2d)
