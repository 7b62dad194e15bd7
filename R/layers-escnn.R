# escnn from R with R-idiomatic arguments: whole numbers instead of `4L`,
# representation names instead of objects. Each wrapper converts its arguments
# (R/arg-transformers.R, R/convert.R; the core checks their values) and calls the
# core's `escnn_models` package, which imports escnn on first use.

#' The core's escnn helpers, with a clear error when escnn is not installed.
#' @noRd
escnn_models <- function() {
  core()
  if (!reticulate::py_module_available("escnn")) {
    abort_equivariance(paste0(
      "This function needs the Python package 'escnn', which is missing from ",
      reticulate::py_config()$python, ".\nRun install_equivariance() to install it."
    ), class = "setup")
  }
  core()$escnn_models
}

#' Is escnn usable in this session?
#'
#' @return `TRUE` when the Python core and the `escnn` package can be loaded.
#' @export
#' @examples
#' escnn_available()
escnn_available <- function() {
  equivariance_available() &&
    isTRUE(tryCatch(reticulate::py_module_available("escnn"), error = function(e) FALSE))
}

#' Rotations (and mirrors) of the plane as an escnn gspace
#'
#' `rot2d_on_r2()` is `escnn.gspaces.rot2dOnR2`: the plane acted on by the
#' cyclic group of `N` rotations (`N = 4`: C4, rotations by multiples of 90
#' degrees; `N = 8`: C8, multiples of 45 degrees), or by all rotations, SO(2), for
#' `N = -1`. `flip_rot2d_on_r2()` is `escnn.gspaces.flipRot2dOnR2`: the same
#' rotations and their mirror images, the dihedral group D_N (`N = 4`: D4, the 8
#' symmetries of the square), or O(2) for `N = -1`.
#'
#' Finite groups have `"regular"` fields (one channel per element) and work with
#' [inner_batch_norm()], [escnn_relu()] and [group_pooling()]. SO(2) and O(2) have
#' only irreducible representations (`"irrep_0"`, `"irrep_1"`, ... for SO(2);
#' `"irrep_0,0"`, `"irrep_1,1"`, ... for O(2) and D_N), up to frequency
#' `maximum_frequency`; use [iid_batch_norm()], [norm_nonlinearity()] and
#' [norm_pool()] on them.
#'
#' @param N Number of rotations (a positive whole number), or -1 for all
#'   rotations.
#' @param maximum_frequency Highest frequency of the irreducible representations
#'   kept for SO(2) and O(2) (a positive whole number).
#' @return An escnn `GSpace2D`; its `fibergroup` prints as `C4`, `C8`, `SO(2)`,
#'   `D4`, `O(2)`, ...
#' @export
#' @examples
#' if (escnn_available()) {
#'   print(rot2d_on_r2(N = 4)$fibergroup)
#'   print(rot2d_on_r2(N = 8)$fibergroup$order()) # 8
#'   print(rot2d_on_r2(N = -1, maximum_frequency = 3)$fibergroup)
#'   flip_rot2d_on_r2(N = 4)$fibergroup$order() # 8
#' }
rot2d_on_r2 <- function(N = 4, maximum_frequency = 6) {
  # which orders are allowed is the core's rule
  core_call(escnn_models()$rot2d_on_r2)
}

#' @rdname rot2d_on_r2
#' @export
flip_rot2d_on_r2 <- function(N = 4, maximum_frequency = 6) {
  core_call(escnn_models()$flip_rot2d_on_r2)
}

#' An escnn field type
#'
#' One field per entry of `reprs`: a gray-scale image is one `"trivial"` field,
#' hidden layers usually use `"regular"` fields (4 channels each for C4).
#'
#' @param gspace An escnn gspace, e.g. [rot2d_on_r2()].
#' @param reprs A character vector of representation names (`"trivial"`,
#'   `"regular"`, `"irrep_0"`, `"irrep_1"`, ...; use `rep("regular", 3)` for three
#'   fields) or a list of escnn representations.
#' @return An escnn `FieldType`; `$size` is its number of channels.
#' @export
#' @examples
#' if (escnn_available()) {
#'   gspace <- rot2d_on_r2(4)
#'   field_type(gspace, rep("regular", 3))$size # 12
#' }
field_type <- function(gspace, reprs) {
  check_py_object(gspace, "gspace", "an escnn gspace such as rot2d_on_r2(4)")
  call_py(escnn_models()$field_type(gspace, as_py_reprs(reprs, "reprs")))
}

#' escnn's group-equivariant convolution
#'
#' `escnn.nn.R2Conv` between two field types, with whole-number arguments.
#'
#' @param in_type,out_type escnn field types on the same gspace ([field_type()]).
#' @param kernel_size Side of the square filter.
#' @param padding Zero padding on every side.
#' @param stride Convolution stride.
#' @param bias Learn a bias (for the trivial parts of the output).
#' @return An escnn `R2Conv` module; call it on a [geometric_tensor()].
#' @export
#' @examples
#' if (escnn_available()) {
#'   gspace <- rot2d_on_r2(4)
#'   conv <- r2_conv(field_type(gspace, "trivial"), field_type(gspace, rep("regular", 3)),
#'     kernel_size = 3)
#'   x <- geometric_tensor(array(rnorm(2 * 32 * 32), c(2, 1, 32, 32)), conv$in_type)
#'   dim(conv(x)$tensor$detach()$numpy()) # 2 12 30 30
#' }
r2_conv <- function(in_type, out_type, kernel_size, padding = 0, stride = 1, bias = TRUE) {
  check_py_object(in_type, "in_type", "an escnn field type")
  check_py_object(out_type, "out_type", "an escnn field type")
  call_py(escnn_models()$r2_conv(
    in_type, out_type,
    kernel_size = as_py_int(kernel_size, "kernel_size"),
    padding = as_py_int(padding, "padding"),
    stride = as_py_int(stride, "stride"),
    bias = as_py_flag(bias, "bias")
  ))
}

#' Wrap a tensor as an escnn geometric tensor
#'
#' @param x An R array or torch tensor of shape `(N, type$size, H, W)`, or a
#'   `GeometricTensor` (which must already have field type `type`).
#' @param type An escnn field type ([field_type()]).
#' @return An escnn `GeometricTensor`; `$tensor` is the torch tensor and
#'   `$transform(g)` applies a group element.
#' @export
#' @examples
#' if (escnn_available()) {
#'   gspace <- rot2d_on_r2(4)
#'   x <- geometric_tensor(array(1:16, c(1, 1, 4, 4)), field_type(gspace, "trivial"))
#'   x$transform(group_elements(gspace)[[2]])$tensor
#' }
geometric_tensor <- function(x, type) {
  check_py_object(type, "type", "an escnn field type")
  if (!(is_py(x) && reticulate::py_has_attr(x, "type"))) x <- as_py_tensor(x, "x")
  call_py(escnn_models()$geometric_tensor(x, type, name = "x"))
}

#' Elements of a finite escnn group
#'
#' @param gspace An escnn gspace with a finite group, e.g. `rot2d_on_r2(4)`.
#' @return A list of escnn group elements. For `rot2d_on_r2(N)`, element `k + 1`
#'   is the rotation by `k` steps and prints as `k[2pi/N]`; for
#'   `flip_rot2d_on_r2(N)`, elements `1` to `N` are the rotations and `N + 1` to
#'   `2 N` the same rotations after a mirror (printed `(-, k[2pi/N])`).
#' @export
#' @examples
#' if (escnn_available()) {
#'   group_elements(rot2d_on_r2(4))
#' }
group_elements <- function(gspace) {
  check_py_object(gspace, "gspace", "an escnn gspace such as rot2d_on_r2(4)")
  out <- call_py(escnn_models()$group_elements(gspace))
  if (is_py(out)) reticulate::py_to_r(out) else out
}

#' Matrix of a group element in a representation
#'
#' @param gspace An escnn gspace, e.g. `rot2d_on_r2(4)`.
#' @param name A representation name (`"irrep_0"`, `"irrep_1"`, `"irrep_2"`,
#'   `"regular"`, `"trivial"`; `"irrep_1,0"`, ... for groups with mirrors) or an
#'   escnn representation.
#' @param element The element: a whole number `k` (element `k + 1` of
#'   [group_elements()], taken modulo the group order) or an element from
#'   [group_elements()].
#' @return A numeric matrix, unrounded (e.g. `6.1e-17` for `cos(pi / 2)`).
#' @export
#' @examples
#' if (escnn_available()) {
#'   gspace <- rot2d_on_r2(4)
#'   representation_matrix(gspace, "irrep_1", 1)
#'   round(representation_matrix(gspace, "regular", 1))
#' }
representation_matrix <- function(gspace, name, element) {
  check_py_object(gspace, "gspace", "an escnn gspace such as rot2d_on_r2(4)")
  if (!is_py(name)) name <- check_string(name, "name")
  m <- call_py(escnn_models()$representation_matrix(gspace, name, as_py_element(element, "element")))
  out <- if (is_py(m)) reticulate::py_to_r(m) else m
  matrix(as.numeric(out), nrow = nrow(out), ncol = ncol(out))
}

#' escnn building blocks: batch norm, ReLU, pooling, sequential
#'
#' Thin wrappers over `escnn.nn` that take whole numbers as R numbers:
#' `inner_batch_norm()` (`InnerBatchNorm`, statistics shared within each field),
#' `escnn_relu()` (`ReLU`), `pointwise_avg_pool()` (`PointwiseAvgPool`, spatial
#' average pooling), `group_pooling()` (`GroupPooling`, max over each field's
#' channels, an invariant) and `escnn_sequential()` (`SequentialModule`).
#'
#' @param type An escnn field type (the module's input type).
#' @param kernel_size Side of the pooling window.
#' @param stride Step of the window (`NULL`: `kernel_size`).
#' @param padding Zero padding.
#' @param ... escnn modules, applied in order.
#' @return An escnn module.
#' @export
#' @examples
#' if (escnn_available()) {
#'   gspace <- rot2d_on_r2(4)
#'   type <- field_type(gspace, rep("regular", 4))
#'   head <- escnn_sequential(pointwise_avg_pool(type, 11), group_pooling(type))
#'   head
#' }
inner_batch_norm <- function(type) escnn_module("inner_batch_norm", type)

#' @rdname inner_batch_norm
#' @export
escnn_relu <- function(type) escnn_module("relu", type)

#' @rdname inner_batch_norm
#' @export
pointwise_avg_pool <- function(type, kernel_size, stride = NULL, padding = 0) {
  escnn_module("pointwise_avg_pool", type, list(kernel_size = kernel_size, stride = stride, padding = padding))
}

#' @rdname inner_batch_norm
#' @export
group_pooling <- function(type) escnn_module("group_pooling", type)

#' escnn building blocks for fields of any representation
#'
#' The counterparts of [inner_batch_norm()], [escnn_relu()] and [group_pooling()]
#' for fields that are not regular, such as the irreducible representations of
#' SO(2) and O(2) ([rot2d_on_r2()] with `N = -1`), where pointwise operations
#' would break equivariance: `iid_batch_norm()` (`IIDBatchNorm2d`, batch norm
#' that keeps each field's symmetry), `norm_nonlinearity()` (`NormNonLinearity`,
#' scales each field by a function of its norm) and `norm_pool()` (`NormPool`, the
#' norm of each field, an invariant).
#'
#' @param type An escnn field type (the module's input type).
#' @param fn The function of the norm: `"n_relu"`, `"n_sigmoid"` or `"squash"`.
#' @param bias Learn a bias added to the norm before `fn`.
#' @return An escnn module.
#' @export
#' @examples
#' if (escnn_available()) {
#'   gspace <- rot2d_on_r2(N = -1, maximum_frequency = 2)
#'   type <- field_type(gspace, c("irrep_0", "irrep_1", "irrep_2"))
#'   model <- escnn_sequential(
#'     r2_conv(field_type(gspace, "trivial"), type, kernel_size = 5, padding = 2),
#'     iid_batch_norm(type), norm_nonlinearity(type), norm_pool(type)
#'   )
#'   model$eval()
#'   x <- geometric_tensor(array(rnorm(9 * 9), c(1, 1, 9, 9)), model$in_type)
#'   dim(as.array(model(x)$tensor)) # 1 3 9 9: one invariant per field
#' }
iid_batch_norm <- function(type) escnn_module("iid_batch_norm", type)

#' @rdname iid_batch_norm
#' @export
norm_nonlinearity <- function(type, fn = "n_relu", bias = TRUE) {
  escnn_module("norm_nonlinearity", type, list(fn = fn, bias = bias))
}

#' @rdname iid_batch_norm
#' @export
norm_pool <- function(type) escnn_module("norm_pool", type)

#' @rdname inner_batch_norm
#' @export
escnn_sequential <- function(...) {
  modules <- list(...)
  for (i in seq_along(modules)) {
    check_py_object(modules[[i]], paste0("..", i), "an escnn module")
  }
  call_py(do.call(escnn_models()$sequential, unname(modules)))
}

#' The escnn walkthrough's network, and an escnn C4 classifier
#'
#' `escnn_walkthrough_model()` builds the walkthrough's three `R2Conv` layers on
#' `rot2d_on_r2(4)`: trivial -> `hidden_fields` regular -> `hidden_fields` regular
#' -> `out_fields` regular, with `InnerBatchNorm` and `ReLU` in between and no
#' padding (a 17x17 input gives 11x11 with `kernel_size = 3`).
#'
#' `escnn_c4_cnn()` is the escnn counterpart of [c4_cnn()] (same layout and
#' widths; escnn's filter basis is smaller, so it has fewer parameters): a torch
#' module taking plain image tensors and returning logits, exactly invariant to
#' 90-degree rotations.
#'
#' @param hidden_fields Regular fields of the two hidden layers.
#' @param out_fields Regular fields of the output.
#' @param kernel_size Side of every filter.
#' @inheritParams simple_cnn
#' @return An escnn `SequentialModule` (in training mode; call `$eval()`), or a
#'   torch module for `escnn_c4_cnn()`.
#' @export
#' @examples
#' if (escnn_available()) {
#'   model <- escnn_walkthrough_model()
#'   model$eval()
#'   x <- geometric_tensor(array(rnorm(17 * 17), c(1, 1, 17, 17)), model$in_type)
#'   dim(model(x)$tensor$detach()$numpy()) # 1 4 11 11
#' }
escnn_walkthrough_model <- function(hidden_fields = 4, out_fields = 1, kernel_size = 3) {
  core_call(escnn_models()$walkthrough_model)
}

#' @rdname escnn_walkthrough_model
#' @export
escnn_c4_cnn <- function(in_channels = 1, num_classes = 10, widths = c(8, 12, 20),
                         kernel_size = 3) {
  core_call(escnn_models()$EscnnC4CNN)
}

#' An escnn classifier for any number of rotations, with or without mirrors
#'
#' Built like [escnn_c4_cnn()] (and [c4_cnn()]) on regular fields of the cyclic
#' group C_N (`flips = FALSE`, [rot2d_on_r2()]) or the dihedral group D_N
#' (`flips = TRUE`, [flip_rot2d_on_r2()]): three `R2Conv` layers with
#' `InnerBatchNorm`, ReLU and stride-2 max pooling, the soft maximum and mean over
#' space, and a linear head that takes the best over the group's permutations of
#' each field. A torch module taking plain image tensors and returning logits,
#' exactly invariant to the group's elements that map the pixel grid onto itself
#' (multiples of 90 degrees, and mirrors with `flips = TRUE`), and nearly
#' invariant to the others (such as 45 degrees for `N = 8`). `escnn_c4_cnn()` is
#' the case `N = 4`, `flips = FALSE`.
#'
#' @param N Number of rotations (a positive whole number).
#' @param flips `TRUE` to be invariant to mirrors as well.
#' @param widths Regular fields of the three convolutions (three whole numbers),
#'   or `NULL` for as many channels as [c4_cnn()] (e.g. `c(4, 6, 10)` for `N = 8`
#'   or for D4).
#' @inheritParams simple_cnn
#' @return A torch module (`EscnnCNN`).
#' @export
#' @examples
#' if (escnn_available()) {
#'   model <- escnn_cnn(N = 8, widths = c(2, 2, 3))
#'   x <- array(runif(2 * 15 * 15), c(2, 1, 15, 15))
#'   print(check_equivariance(model, x)) # exact for quarter turns
#'   d4 <- escnn_cnn(N = 4, flips = TRUE, widths = c(2, 2, 3))
#'   d4$eval()
#'   mirrored <- x[, , , 15:1, drop = FALSE]
#'   max(abs(as.array(d4(as_tensor(x))) - as.array(d4(as_tensor(mirrored)))))
#' }
escnn_cnn <- function(N = 8, flips = FALSE, in_channels = 1, num_classes = 10,
                      widths = NULL, kernel_size = 3) {
  core_call(escnn_models()$EscnnCNN)
}

#' The escnn module `name` of the core's escnn_models on the field type `type`,
#' with the arguments `args` (R values, converted by convert_args()).
#' @noRd
escnn_module <- function(name, type, args = list()) {
  check_py_object(type, "type", "an escnn field type")
  call_py(do.call(escnn_models()[[name]], c(list(type), convert_args(args))))
}

#' Stop unless `x` is a Python object (the Python side checks what kind).
#' @noRd
check_py_object <- function(x, arg, expected) {
  if (!is_py(x)) arg_error(arg, expected, describe(x), class = "type")
  invisible(x)
}
