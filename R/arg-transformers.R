# Small reusable converters from R values to Python values (and back): whole
# numbers to Python ints, vectors to tuples, arrays to tensors, R functions to
# callables. Each stops with a classed condition (R/conditions.R) naming the
# argument when a value cannot be converted without changing its meaning; rules
# about what a particular argument accepts live in the Python core.

is_py <- function(x) inherits(x, "python.builtin.object")

is_py_tensor <- function(x) inherits(x, "torch.Tensor")

#' TRUE for a function written in R; FALSE for a Python callable, which reticulate
#' also shows as an R function but which must reach Python untouched (wrapped in R,
#' it could not be pickled for worker processes).
#' @noRd
is_r_function <- function(x) is.function(x) && !is_py(x)

#' Stop with "`arg` must be <expected>, got <got>." as an equivariance_error of
#' class `class` ("value" or "type", as Python's ValueError and TypeError).
#' @noRd
arg_error <- function(arg, expected, got = NULL, class = "value") {
  detail <- if (is.null(got)) "" else paste0(", got ", got)
  abort_equivariance(paste0("`", arg, "` must be ", expected, detail, "."), class)
}

describe <- function(x) {
  if (is_py(x)) {
    return(paste0("a Python ", class(x)[1]))
  }
  if (is.function(x)) {
    return("a function")
  }
  if (is.null(x)) {
    return("NULL")
  }
  if (is.atomic(x) && length(x) == 1) {
    # a whole number is shown with all its digits: 3000000001, not 3e+09
    exact <- is.numeric(x) && is_whole(x) && abs(x) <= max_exact_whole
    return(if (is.character(x)) paste0('"', x, '"') else if (exact) sprintf("%.0f", x) else format(x))
  }
  paste0("a ", class(x)[1], " of length ", length(x))
}

check_string <- function(x, arg) {
  if (!is.character(x) || length(x) != 1 || is.na(x) || !nzchar(x)) {
    arg_error(arg, "a single non-empty string", describe(x))
  }
  x
}

is_whole <- function(x) {
  is.numeric(x) && !is.na(x) && is.finite(x) && x == round(x)
}

# Beyond 2^53 consecutive whole numbers are no longer all doubles: 2^53 + 1 typed
# in R is already 2^53, so such a value is not the number the user meant.
max_exact_whole <- 2^53

#' A whole number (checked by the caller) -> the same value as a Python int.
#'
#' An R integer is passed as is (reticulate makes it a Python int). A double beyond
#' R's integer range becomes a Python int built from the double, exactly: as.integer()
#' would give NA (passed to Python as -2147483648).
#' @noRd
py_int <- function(x, arg) {
  if (abs(x) > max_exact_whole) {
    arg_error(arg, "a whole number of at most 2^53 in absolute value", describe(x))
  }
  if (abs(x) <= .Machine$integer.max) {
    return(as.integer(x))
  }
  reticulate::import_builtins(convert = FALSE)$int(as.double(x))
}

#' Whole number -> Python int. `min` is the smallest value allowed.
#' @noRd
as_py_int <- function(x, arg, min = 1) {
  if (is.logical(x) || !is.numeric(x) || length(x) != 1 || !is_whole(x) || x < min) {
    what <- if (min == 1) {
      "a positive whole number"
    } else if (min == 0) {
      "a non-negative whole number"
    } else {
      "a whole number"
    }
    arg_error(arg, what, describe(x))
  }
  py_int(x, arg)
}

#' A number -> Python int when it is whole, else Python float, with no rule on its
#' range: the core checks it and its message shows the value. Only what cannot
#' reach Python as the number the user gave is rejected here: TRUE (which Python
#' would take as 1), NA (a logical NA becomes True), NaN, Inf and vectors.
#' @noRd
as_py_whole <- function(x, arg) {
  if (is.logical(x) || !is.numeric(x) || length(x) != 1 || !is.finite(x)) {
    arg_error(arg, "a whole number", describe(x))
  }
  if (is_whole(x)) py_int(x, arg) else as.double(x)
}

#' Vector of positive whole numbers -> Python tuple of ints.
#' @noRd
as_py_shape <- function(x, arg) {
  if (is.list(x)) {
    ok <- all(vapply(x, function(v) is.numeric(v) && length(v) == 1, logical(1)))
    if (!ok) arg_error(arg, "positive whole numbers, e.g. c(1, 28, 28)", describe(x))
    x <- unlist(x)
  }
  if (is.logical(x) || !is.numeric(x) || length(x) == 0 ||
    !all(vapply(x, is_whole, logical(1))) || any(x < 1)) {
    arg_error(arg, "positive whole numbers, e.g. c(1, 28, 28)", describe(x))
  }
  reticulate::tuple(lapply(x, py_int, arg = arg))
}

#' Non-negative real number -> Python float.
#' @noRd
as_py_nonneg <- function(x, arg) {
  if (is_py_tensor(x)) x <- x$item()
  if (is.logical(x) || !is.numeric(x) || length(x) != 1 || is.na(x) ||
    !is.finite(x) || x < 0) {
    arg_error(arg, "a non-negative finite number", describe(x))
  }
  as.double(x)
}

#' R function or Python callable -> Python callable.
#' @noRd
as_py_callable <- function(f, arg) {
  if (is_r_function(f)) {
    return(py_function(f))
  }
  if (is_py(f) && reticulate::py_has_attr(f, "__call__")) {
    return(f)
  }
  arg_error(arg, "a function", describe(f), class = "type")
}

#' R array/vector (or tensor) -> torch tensor, index order preserved.
#' @noRd
as_py_tensor <- function(x, arg, dtype = "float32") {
  if (is_py_tensor(x)) {
    return(x)
  }
  if (is_py(x) && inherits(x, "numpy.ndarray")) {
    return(torch_module()$tensor(x))
  }
  if (!is.numeric(x) && !is.logical(x)) {
    arg_error(arg, "a numeric array or a torch tensor", describe(x), class = "type")
  }
  check_finite_array(x, arg, dtype)
  if (is.null(dim(x))) x <- array(x, dim = length(x))
  torch_module()$tensor(reticulate::np_array(x, dtype = dtype))
}

#' Stop unless every element of the R array `x` is finite (no NA, NaN, Inf, -Inf)
#' and, for a float32 tensor, small enough not to become Inf in float32.
#'
#' range() is one pass that allocates nothing, and is not finite exactly when an
#' element is not; only then are the elements looked at one by one.
#' @noRd
check_finite_array <- function(x, arg, dtype = "float32") {
  if (length(x) == 0) {
    return(invisible(x))
  }
  r <- if (is.double(x)) range(x) else if (anyNA(x)) NA else 0
  if (any(!is.finite(r))) {
    i <- which(!is.finite(x))[1]
    got <- paste0(if (is.nan(x[[i]])) "NaN" else format(x[[i]]), " at position ", i)
    arg_error(arg, "an array of finite numbers (without NA, NaN or Inf)", got)
  }
  if (dtype == "float32" && max(abs(r)) > float32_max) {
    i <- which(abs(x) > float32_max)[1]
    got <- paste0(format(x[[i]]), " at position ", i)
    arg_error(arg, "an array of numbers of at most 3.4e38 in absolute value (float32)", got)
  }
  invisible(x)
}

float32_max <- 3.4028234663852886e38

#' Tensor (or numpy array) -> R array (or vector for 1-D), index order preserved.
#' @noRd
as_r_array <- function(x) {
  if (is_py_tensor(x)) {
    x <- x$detach()$cpu()$numpy()
  }
  out <- if (is_py(x)) reticulate::py_to_r(x) else x
  if (length(dim(out)) <= 1) out <- as.vector(out)
  out
}

#' Shape of a tensor as an R integer vector (torch.Size is not converted by reticulate).
#' @noRd
as_r_shape <- function(x) {
  as.integer(unlist(reticulate::import_builtins()$list(x$shape)))
}

#' TRUE/FALSE -> Python bool.
#' @noRd
as_py_flag <- function(x, arg) {
  if (!is.logical(x) || length(x) != 1 || is.na(x)) {
    arg_error(arg, "TRUE or FALSE", describe(x))
  }
  x
}

#' One of a set of strings.
#' @noRd
as_py_choice <- function(x, choices, arg) {
  if (!is.character(x) || length(x) != 1 || is.na(x) || !x %in% choices) {
    arg_error(arg, paste0("one of ", paste0('"', choices, '"', collapse = ", ")), describe(x))
  }
  x
}

#' Positive finite number -> Python float.
#' @noRd
as_py_positive <- function(x, arg) {
  if (is.logical(x) || !is.numeric(x) || length(x) != 1 || is.na(x) || !is.finite(x) || x <= 0) {
    arg_error(arg, "a positive finite number", describe(x))
  }
  as.double(x)
}

#' The first choice when `x` is the untouched default vector of choices (R's
#' `c("a", "b")` idiom), else `x` itself: which values are allowed is the core's
#' rule, and its message names the argument (match.arg()'s would not).
#' @noRd
default_choice <- function(x, choices) {
  if (identical(x, choices)) choices[[1]] else x
}
