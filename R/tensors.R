# Torch tensors from R: R arrays to tensors and back, and arithmetic on tensors.

#' Convert an R array to a torch tensor
#'
#' Index order is preserved: `dim(x)` becomes the tensor's shape.
#'
#' @param x A numeric array (or vector), or a torch tensor (returned as is).
#' @return A float32 torch tensor.
#' @seealso [as.array.torch.Tensor()] for the way back
#' @export
#' @examples
#' if (equivariance_available()) {
#'   as_tensor(array(1:24, c(1, 2, 3, 4)))$shape
#' }
as_tensor <- function(x) {
  call_py(as_py_tensor(x, "x"))
}

#' Arithmetic on torch tensors from R
#'
#' reticulate before 1.29 has no arithmetic operators for Python objects. With
#' such a reticulate, loading the package registers these operators for torch
#' tensors, so that R code combines them with each other and with R numbers, as in
#' a training loop: `loss <- criterion(model(x), y) + reg()`. They call Python's
#' operators, so gradients flow as in Python. A reticulate with operators of its
#' own keeps them: nothing is registered then.
#'
#' @param e1,e2 Torch tensors or R numbers.
#' @return A torch tensor (or a tensor of booleans for comparisons).
#' @name tensor-ops
#' @keywords internal
#' @examples
#' if (equivariance_available()) {
#'   torch <- reticulate::import("torch")
#'   a <- torch$ones(2L)
#'   a + 1
#'   2 * a - a
#' }
NULL

#' @rdname tensor-ops
tensor_ops <- function(e1, e2) {
  op <- reticulate::import("operator")
  fn <- switch(.Generic,
    "+" = op$add, "-" = op$sub, "*" = op$mul, "/" = op$truediv, "^" = op$pow,
    "%%" = op$mod, "%/%" = op$floordiv,
    "==" = op$eq, "!=" = op$ne, "<" = op$lt, "<=" = op$le, ">" = op$gt, ">=" = op$ge,
    abort_equivariance(paste0("operator ", .Generic, " is not supported for torch tensors"), "type")
  )
  if (missing(e2)) {
    if (.Generic == "-") return(op$neg(e1))
    if (.Generic == "+") return(e1)
    abort_equivariance(paste0("unary ", .Generic, " is not supported for torch tensors"), "type")
  }
  fn(tensor_operand(e1), tensor_operand(e2))
}

tensor_operand <- function(x) {
  if (is_py(x)) {
    return(x)
  }
  if (!is.numeric(x) || length(x) != 1) {
    abort_equivariance(paste0("torch tensors combine with tensors or single numbers, got ", describe(x)), "type")
  }
  reticulate::r_to_py(as.double(x))
}

#' Convert a torch tensor to an R array
#'
#' `as.array()` on a torch tensor detaches it, moves it to the CPU and returns an R
#' array with the same dimensions and index order (`x[i, j]` in R is `x[i-1, j-1]`
#' in Python). The inverse of [as_tensor()].
#'
#' @param x A torch tensor.
#' @param ... Ignored.
#' @return An R array (a vector for 1-dimensional tensors).
#' @export
#' @examples
#' if (equivariance_available()) {
#'   torch <- reticulate::import("torch")
#'   as.array(torch$arange(6)$reshape(c(2L, 3L)))
#' }
as.array.torch.Tensor <- function(x, ...) {
  as_r_array(x)
}

#' Register tensor_ops() as the Ops method of torch tensors, unless reticulate
#' already has operators for Python objects (it does from 1.29 on).
#' @noRd
register_tensor_ops <- function() {
  if (reticulate_has_operators()) {
    return(invisible(FALSE))
  }
  registerS3method("Ops", "torch.Tensor", tensor_ops, envir = asNamespace("equivariance"))
  invisible(TRUE)
}

reticulate_has_operators <- function() {
  # reticulate 1.29 added "+.python.builtin.object" and the other Ops methods
  exists("+.python.builtin.object", envir = asNamespace("reticulate"), inherits = FALSE)
}
