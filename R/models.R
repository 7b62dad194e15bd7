# Classifiers without escnn (the core's models/ package): the baselines and the
# group CNNs. Each is one call of core_call() (R/core-call.R); the number of
# widths, an odd kernel size and every other rule on the arguments are the core's.

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
simple_cnn <- function(in_channels = 1, num_classes = 10, widths = c(8, 16, 16), kernel_size = 3) core_call(core()$SimpleCNN)

#' @rdname simple_cnn
#' @export
eq_cnn <- function(in_channels = 1, num_classes = 10, widths = c(8, 16, 16), kernel_size = 3) core_call(core()$EqCNN)

#' @rdname simple_cnn
#' @export
c4_cnn <- function(in_channels = 1, num_classes = 10, widths = c(8, 12, 20), kernel_size = 3) core_call(core()$C4CNN)

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
d4_cnn <- function(in_channels = 1, num_classes = 10, widths = c(8, 8, 12), kernel_size = 3) core_call(core()$D4CNN)
