# C4 group-convolution layers and networks (plain PyTorch, from the Python core).
# Every constructor converts its arguments in R/convert.R and returns the Python
# torch module, callable from R as `layer(x)` on a torch tensor.

#' C4 lifting convolution: images to regular rotation fields
#'
#' A convolution whose output is exactly equivariant to rotations of the input by
#' multiples of 90 degrees (the group C4). Each of the `out_fields` output fields
#' has 4 channels, one per orientation (escnn's regular representation): rotating
#' the input by 90 degrees rotates every output map and cyclically shifts each
#' field's 4 channels. Only one filter per output field and input channel is
#' learnt; the layer applies its 4 rotations.
#'
#' @param in_channels Number of input channels (whole number).
#' @param out_fields Number of regular output fields; the output has
#'   `4 * out_fields` channels.
#' @param kernel_size Side of the square filter.
#' @param stride Convolution stride.
#' @param padding Zero padding on every side.
#' @param bias `TRUE` or `FALSE`: learn one bias per output field (shared by its 4
#'   orientations).
#' @return A Python `C4LiftingConv2d` torch module mapping tensors of shape
#'   `(N, in_channels, H, W)` to `(N, 4 * out_fields, H', W')`. Its `export()`
#'   method returns a plain `nn.Conv2d` giving the same output. The expanded filter
#'   is computed from the current weights on every call (also in evaluation mode),
#'   so any update of the weights, even through `$data`, shows in the next output;
#'   a module saved whole with `torch$save()` holds its weights, not the expanded
#'   filter.
#' @seealso [c4_conv2d()], [check_equivariance()]
#' @export
#' @examples
#' if (equivariance_available()) {
#'   layer <- c4_lifting_conv2d(1, 3, kernel_size = 3)
#'   x <- as_tensor(array(rnorm(2 * 32 * 32), c(2, 1, 32, 32)))
#'   dim(layer(x)$detach()$numpy()) # 2 12 30 30
#' }
c4_lifting_conv2d <- function(in_channels, out_fields, kernel_size, stride = 1,
                              padding = 0, bias = TRUE) {
  args <- c(
    list(as_py_int(in_channels, "in_channels")),
    c4_conv_args(out_fields, kernel_size, stride, padding, bias)
  )
  call_py(do.call(core()$C4LiftingConv2d, args))
}

#' C4 group convolution between regular rotation fields
#'
#' A convolution from `in_fields` regular fields (4 orientation channels each) to
#' `out_fields` regular fields that is exactly equivariant to rotations by
#' multiples of 90 degrees: rotating the input maps and shifting each field's
#' orientation channels does the same to the output.
#'
#' @inheritParams c4_lifting_conv2d
#' @param in_fields Number of regular input fields; the input has `4 * in_fields`
#'   channels.
#' @return A Python `C4Conv2d` torch module mapping `(N, 4 * in_fields, H, W)` to
#'   `(N, 4 * out_fields, H', W')`, with an `export()` method returning the
#'   equivalent plain `nn.Conv2d`.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   layer <- c4_conv2d(3, 2, kernel_size = 3, padding = 1)
#'   layer
#' }
c4_conv2d <- function(in_fields, out_fields, kernel_size, stride = 1, padding = 0,
                      bias = TRUE) {
  args <- c(
    list(as_py_int(in_fields, "in_fields")),
    c4_conv_args(out_fields, kernel_size, stride, padding, bias)
  )
  call_py(do.call(core()$C4Conv2d, args))
}

#' Batch normalisation of regular C4 fields
#'
#' Like `nn.BatchNorm2d`, but the mean, variance, scale and shift of a field are
#' shared by its 4 orientation channels (escnn's `InnerBatchNorm`), so the layer
#' commutes with 90-degree rotations.
#'
#' @param num_fields Number of regular fields (`4 * num_fields` channels).
#' @param eps Added to the variance for numerical stability (a finite number >= 0).
#' @param momentum Weight of each batch in the running statistics, a number in
#'   \[0, 1\], or `NULL` for a cumulative average.
#' @return A Python `C4BatchNorm2d` torch module.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   c4_batch_norm2d(8)
#' }
c4_batch_norm2d <- function(num_fields, eps = 1e-5, momentum = 0.1) {
  # the core checks the range of momentum (it names the argument and the value)
  if (!is.null(momentum)) momentum <- as_py_nonneg(momentum, "momentum")
  call_py(core()$C4BatchNorm2d(
    as_py_int(num_fields, "num_fields"),
    eps = as_py_nonneg(eps, "eps"),
    momentum = momentum
  ))
}

#' Pool regular C4 fields over their orientations
#'
#' Reduces each regular field's 4 orientation channels to one channel by their
#' maximum or mean: the result only rotates with the input (no channel shift), so
#' after spatial pooling it is invariant.
#'
#' @param mode `"max"` or `"mean"`.
#' @return A Python `C4GroupPool` torch module mapping `(N, 4 * F, ...)` to
#'   `(N, F, ...)`.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   c4_group_pool("mean")
#' }
c4_group_pool <- function(mode = c("max", "mean")) {
  if (!is.character(mode) || length(mode) < 1) {
    arg_error("mode", '"max" or "mean"', describe(mode))
  }
  mode <- tryCatch(match.arg(mode), error = function(e) {
    arg_error("mode", '"max" or "mean"', describe(mode))
  })
  call_py(core()$C4GroupPool(mode))
}

#' Image classifiers: a plain CNN, the stacked-rotations CNN and a C4 network
#'
#' Three classifiers for `(N, in_channels, H, W)` images returning
#' `(N, num_classes)` logits, as compared in the rotated Fashion-MNIST benchmark:
#'
#' * `simple_cnn()`: a plain CNN (three 3x3 convolutions with SiLU and max
#'   pooling, global max pooling, a linear layer). Not rotation invariant.
#' * `eq_cnn()`: the same filters applied to the input's 4 rotations (a Conv3d with
#'   `(1, k, k)` kernels), then a max over rotations: exactly invariant, same
#'   parameter count as `simple_cnn()`. Needs square images.
#' * `c4_cnn()`: a C4 group-convolution network with batch normalisation (lifting
#'   convolution, two group convolutions, a soft maximum and the mean over space, a
#'   linear head that takes the best of the orientations' cyclic orders), exactly
#'   invariant to 90-degree rotations for any image size, in training and
#'   evaluation mode. 13,898 parameters with the default widths.
#'
#' @param in_channels Channels of the input images.
#' @param num_classes Number of output logits.
#' @param widths Three whole numbers: channels (`simple_cnn()`, `eq_cnn()`) or
#'   regular fields (`c4_cnn()`) of the three convolutions.
#' @param kernel_size Side of the square filters.
#' @return A Python torch module (`SimpleCNN`, `EqCNN` or `C4CNN`).
#' @export
#' @examples
#' if (equivariance_available()) {
#'   model <- c4_cnn()
#'   x <- as_tensor(array(runif(2 * 28 * 28), c(2, 1, 28, 28)))
#'   check_equivariance(model, x)
#' }
simple_cnn <- function(in_channels = 1, num_classes = 10, widths = c(8, 16, 16),
                       kernel_size = 3) {
  build_network("SimpleCNN", in_channels, num_classes, widths, kernel_size)
}

#' @rdname simple_cnn
#' @export
eq_cnn <- function(in_channels = 1, num_classes = 10, widths = c(8, 16, 16),
                   kernel_size = 3) {
  build_network("EqCNN", in_channels, num_classes, widths, kernel_size)
}

#' @rdname simple_cnn
#' @export
c4_cnn <- function(in_channels = 1, num_classes = 10, widths = c(8, 12, 20),
                   kernel_size = 3) {
  build_network("C4CNN", in_channels, num_classes, widths, kernel_size)
}

build_network <- function(name, in_channels, num_classes, widths, kernel_size) {
  if (length(widths) != 3) {
    arg_error("widths", "three positive whole numbers", describe(widths))
  }
  call_py(core()[[name]](
    in_channels = as_py_int(in_channels, "in_channels"),
    num_classes = as_py_int(num_classes, "num_classes"),
    widths = as_py_shape(widths, "widths"),
    kernel_size = as_py_int(kernel_size, "kernel_size")
  ))
}

#' Convert an R array to a torch tensor
#'
#' Index order is preserved: `dim(x)` becomes the tensor's shape.
#'
#' @param x A numeric array (or vector), or a torch tensor (returned as is).
#' @return A float32 torch tensor.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   as_tensor(array(1:24, c(1, 2, 3, 4)))$shape
#' }
as_tensor <- function(x) {
  as_py_tensor(x, "x")
}

#' Arguments shared by the two C4 convolutions, converted for Python.
#' @noRd
c4_conv_args <- function(out_fields, kernel_size, stride, padding, bias) {
  list(
    as_py_int(out_fields, "out_fields"),
    as_py_int(kernel_size, "kernel_size"),
    stride = as_py_int(stride, "stride"),
    padding = as_py_int(padding, "padding", min = 0),
    bias = as_py_flag(bias, "bias")
  )
}
