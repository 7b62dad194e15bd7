#' Check equivariance to 90-degree rotations (and mirrors) numerically
#'
#' For every element of the group C4 (rotation by `k * 90` degrees, as
#' `torch.rot90` with `k`) or, with `group = "D4"`, of D4 (the same rotations,
#' alone and after a left-right mirror), runs `module` on the transformed input and
#' compares it with the matching transformation of the original output. The error is
#' `max |module(g x) - g module(x)|` divided by `max |module(x)|`: 0 (about 1e-7
#' in single precision) for an exactly equivariant module, of order 0.1 to 1 for a
#' module that ignores rotations.
#'
#' The module runs in its current mode (training or evaluation) without
#' gradients; buffers such as batch-norm running statistics are restored, so the
#' check has no side effects. escnn modules are supported: the input is wrapped in
#' a `GeometricTensor` of the module's input type and, by default, both sides are
#' transformed as their field types say.
#'
#' @param module A torch module (or any Python callable, or an R function of a
#'   tensor), or an escnn equivariant module.
#' @param x Input batch: an R array (index order kept), a torch tensor or an
#'   escnn `GeometricTensor`.
#' @param group The group: `"C4"` (the 4 rotations, the default) or `"D4"` (the 4
#'   rotations and the 4 rotations of the mirrored input). An escnn module must
#'   act on the same group (`rot2d_on_r2(4)` or `flip_rot2d_on_r2(4)`).
#' @param output Action on the output: `"invariant"` (unchanged, e.g. logits),
#'   `"rotate"` (feature maps rotate, and mirror for D4), `"regular"` (maps
#'   transform and each regular field's 4 or 8 channels permute), a
#'   `function(y, k)` of the 0-based element index `k`, or `"auto"` (the
#'   module's own declaration, escnn's output type, `"invariant"` for outputs
#'   without spatial dimensions, otherwise `"rotate"`).
#' @param input Action on the input, with the same choices (`"auto"`: `"rotate"`,
#'   or `"regular"` for layers that take regular fields, or escnn's input type).
#' @return A data frame with one row per group element: `element` and `error`
#'   (relative error, see Details). `element` names the elements by rotation and
#'   mirror: `"rot0"`, `"rot90"`, `"rot180"`, `"rot270"` for C4, followed by
#'   `"flip_rot0"`, ..., `"flip_rot270"` (mirror left to right, then turn) for D4,
#'   in escnn's order for `rot2d_on_r2(4)` and `flip_rot2d_on_r2(4)`.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   x <- array(runif(2 * 28 * 28), c(2, 1, 28, 28))
#'   check_equivariance(c4_cnn(), x)
#'   check_equivariance(simple_cnn(), x)
#'   check_equivariance(d4_cnn(), x, group = "D4")
#' }
check_equivariance <- function(module, x, group = "C4", output = "auto", input = "auto") {
  # the rules on `module` and `group` live in Python: R converts, Python checks
  if (is.function(module)) module <- as_py_callable(module, "module")
  if (!(is_py(x) && inherits(x, "escnn.nn.geometric_tensor.GeometricTensor"))) {
    # an R array goes in the module's floating type: a double() model is checked in
    # float64, not on values rounded to float32 first
    x <- as_py_tensor(x, "x", dtype = if (is_py(module)) model_float_dtype(module) else "float32")
  }
  errors <- call_py(core()$check_equivariance(
    module, x,
    group = group,
    output = as_py_action(output, "output"),
    input = as_py_action(input, "input")
  ))
  if (is_py(errors)) errors <- reticulate::py_to_r(errors)
  errors <- as.numeric(unlist(errors))
  # every group names its elements: "rot0", "rot90", ..., "flip_rot270"
  element <- unlist(call_py(core()$get_group(group))$names)
  data.frame(element = element, error = errors)
}

#' Feature maps after the first layers of a network
#'
#' Runs the images `x` through the first `depth` layers of `model` (in evaluation
#' mode, without gradients) and returns the feature maps as an R array. Useful to
#' see equivariance: for a C4 network the maps of a turned image are the maps of
#' the upright image, turned, with each regular field's 4 orientation channels
#' cyclically shifted.
#'
#' @param model A torch `nn.Sequential`, or a network whose `features` is one, such
#'   as [c4_cnn()] or [simple_cnn()].
#' @param x Images: an R array of dimension `c(N, C, H, W)` or a torch tensor.
#' @param depth How many layers to run (from 1).
#' @return An R array of dimension `c(N, channels, height, width)`.
#' @seealso [check_equivariance()]
#' @export
#' @examples
#' if (equivariance_available()) {
#'   x <- array(runif(28 * 28), c(1, 1, 28, 28))
#'   maps <- feature_maps(c4_cnn(), x, depth = 3)
#'   dim(maps) # 8 regular fields x 4 orientations
#'   image(maps[1, 1, , ], axes = FALSE)
#' }
feature_maps <- function(model, x, depth = 1) {
  model <- as_py_module(model, "model")
  x <- as_py_tensor(x, "x", dtype = model_float_dtype(model))
  maps <- call_py(core()$feature_maps(model, x, depth = as_py_int(depth, "depth")))
  as_r_array(maps)
}
