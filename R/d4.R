# D4 group-convolution layers and the D4CNN classifier (plain PyTorch, from the
# Python core's `groups` package). D4 holds the 8 symmetries of the square: the
# rotations by multiples of 90 degrees, and the same after a left-right mirror.
# Every constructor converts its arguments and returns the Python torch module.

#' D4 lifting convolution: images to regular rotation-and-mirror fields
#'
#' A convolution whose output is exactly equivariant to the 8 symmetries of the
#' square (the dihedral group D4): rotations by multiples of 90 degrees, with or
#' without a mirror. Each of the `out_fields` output fields has 8 channels, one
#' per element, in the order of escnn's regular representation of
#' `flip_rot2d_on_r2(4)` (`rot0`, `rot90`, `rot180`, `rot270`, `flip_rot0`, ...,
#' `flip_rot270`, where `flip_` means a left-right mirror first): transforming
#' the input transforms every output map and permutes each field's 8 channels as
#' that representation does. One filter per output field and input channel is
#' learnt; the layer applies its 8 transformed copies.
#'
#' @param in_channels Number of input channels (whole number).
#' @param out_fields Number of regular output fields; the output has
#'   `8 * out_fields` channels.
#' @param kernel_size Side of the square filter.
#' @param stride Convolution stride.
#' @param padding Zero padding on every side.
#' @param bias Learn one bias per output field (shared by its 8 channels).
#' @return A Python `D4LiftingConv2d` torch module mapping `(N, in_channels, H, W)`
#'   to `(N, 8 * out_fields, H', W')`. Its `export()` method returns a plain
#'   `nn.Conv2d` giving the same output.
#' @seealso [d4_conv2d()], [d4_cnn()], [c4_lifting_conv2d()] for rotations only.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   layer <- d4_lifting_conv2d(1, 2, kernel_size = 3)
#'   x <- as_tensor(array(rnorm(2 * 16 * 16), c(2, 1, 16, 16)))
#'   dim(as.array(layer(x))) # 2 16 14 14
#' }
d4_lifting_conv2d <- function(in_channels, out_fields, kernel_size, stride = 1,
                              padding = 0, bias = TRUE) {
  args <- c(
    list(as_py_int(in_channels, "in_channels")),
    c4_conv_args(out_fields, kernel_size, stride, padding, bias)
  )
  call_py(do.call(core()$D4LiftingConv2d, args))
}

#' D4 group convolution between regular rotation-and-mirror fields
#'
#' A convolution from `in_fields` regular D4 fields (8 channels each) to
#' `out_fields` regular D4 fields, exactly equivariant to rotations by multiples
#' of 90 degrees and mirrors: transforming the input maps and permuting each
#' field's channels does the same to the output.
#'
#' @inheritParams d4_lifting_conv2d
#' @param in_fields Number of regular input fields; the input has `8 * in_fields`
#'   channels.
#' @return A Python `D4Conv2d` torch module mapping `(N, 8 * in_fields, H, W)` to
#'   `(N, 8 * out_fields, H', W')`, with an `export()` method returning the
#'   equivalent plain `nn.Conv2d`.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   layer <- d4_conv2d(2, 3, kernel_size = 3, padding = 1)
#'   layer
#' }
d4_conv2d <- function(in_fields, out_fields, kernel_size, stride = 1, padding = 0,
                      bias = TRUE) {
  args <- c(
    list(as_py_int(in_fields, "in_fields")),
    c4_conv_args(out_fields, kernel_size, stride, padding, bias)
  )
  call_py(do.call(core()$D4Conv2d, args))
}

#' Batch normalisation of regular D4 fields
#'
#' Like `nn.BatchNorm2d`, but the mean, variance, scale and shift of a field are
#' shared by its 8 channels (escnn's `InnerBatchNorm`), so the layer commutes with
#' rotations and mirrors.
#'
#' @param num_fields Number of regular fields (`8 * num_fields` channels).
#' @param eps Added to the variance for numerical stability (positive).
#' @param momentum Momentum of the running statistics, in `[0, 1]`, or `NULL` for
#'   a cumulative average.
#' @return A Python `D4BatchNorm2d` torch module.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   d4_batch_norm2d(4)
#' }
d4_batch_norm2d <- function(num_fields, eps = 1e-5, momentum = 0.1) {
  call_py(core()$D4BatchNorm2d(
    as_py_int(num_fields, "num_fields"),
    eps = as_py_nonneg(eps, "eps"),
    momentum = as_py_momentum(momentum, "momentum")
  ))
}

#' Pool regular D4 fields over their 8 channels, and D4-safe spatial max pooling
#'
#' `d4_group_pool()` reduces each regular field's 8 channels to one by their
#' maximum or mean: the result is only rotated and mirrored with the input (no
#' channel permutation), so after spatial pooling it is invariant.
#' `d4_max_pool2d()` is a stride-2 max pooling that commutes with rotations and
#' mirrors for odd and even image sizes alike (a 3-wide window with padding 1 on
#' an odd side, a 2-wide one on an even side).
#'
#' @param mode `"max"` or `"mean"`.
#' @return A Python torch module: `D4GroupPool` mapping `(N, 8 * F, ...)` to
#'   `(N, F, ...)`, or `D4MaxPool2d` mapping `(N, C, H, W)` to
#'   `(N, C, ceiling(H / 2), ceiling(W / 2))`.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   x <- as_tensor(array(rnorm(8 * 5 * 5), c(1, 8, 5, 5)))
#'   print(dim(as.array(d4_group_pool("mean")(x)))) # 1 1 5 5
#'   dim(as.array(d4_max_pool2d()(x))) # 1 8 3 3
#' }
d4_group_pool <- function(mode = "max") {
  # which modes exist is the core's rule
  call_py(core()$D4GroupPool(check_string(mode, "mode")))
}

#' @rdname d4_group_pool
#' @export
d4_max_pool2d <- function() {
  call_py(core()$D4MaxPool2d())
}

#' A D4 group-convolution classifier, invariant to rotations and mirrors
#'
#' Built like [c4_cnn()] from D4 layers: a lifting convolution, two group
#' convolutions with batch normalisation, ReLU and [d4_max_pool2d()] between, the
#' soft maximum and mean over space, and a linear head that takes the best over
#' the 8 orders of each field's channels. The logits are exactly invariant (up to
#' float rounding) to the 8 rotations and mirrors of the input, for any image
#' size, in training and evaluation mode. 13,606 parameters with the default
#' widths.
#'
#' @param in_channels Channels of the input images.
#' @param num_classes Number of output logits.
#' @param widths Three whole numbers: regular D4 fields (8 channels each) of the
#'   three convolutions.
#' @param kernel_size Side of the square filters (odd).
#' @return A Python `D4CNN` torch module mapping `(N, in_channels, H, W)` images
#'   to `(N, num_classes)` logits.
#' @seealso [c4_cnn()], [escnn_cnn()] for other rotation orders through escnn.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   model <- d4_cnn()
#'   x <- array(runif(2 * 28 * 28), c(2, 1, 28, 28))
#'   logits <- as.array(model(as_tensor(x)))
#'   mirrored <- as.array(model(as_tensor(x[, , , 28:1, drop = FALSE])))
#'   max(abs(logits - mirrored)) # float rounding only
#' }
d4_cnn <- function(in_channels = 1, num_classes = 10, widths = c(8, 8, 12),
                   kernel_size = 3) {
  # the number of widths and an odd kernel_size are the core's rules
  call_py(core()$D4CNN(
    in_channels = as_py_int(in_channels, "in_channels"),
    num_classes = as_py_int(num_classes, "num_classes"),
    widths = as_py_shape(widths, "widths"),
    kernel_size = as_py_int(kernel_size, "kernel_size")
  ))
}
