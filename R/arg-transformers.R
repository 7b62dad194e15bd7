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

#' A whole number -> Python int (a number that is not whole goes as a float), with
#' no rule on its range: the core checks it and its message shows the value. Only
#' what cannot reach Python as the number the user gave is refused here: TRUE
#' (which Python would take as 1), NA (a logical NA becomes True), NaN, Inf,
#' strings and vectors.
#' @noRd
as_py_int <- function(x, arg) {
  if (is.logical(x) || !is.numeric(x) || length(x) != 1 || !is.finite(x)) {
    arg_error(arg, "a whole number", describe(x))
  }
  if (is_whole(x)) py_int(x, arg) else as.double(x)
}

#' Whole numbers -> Python tuple of ints (a number that is not whole goes as a
#' float): shapes and widths. How many there must be and their range are the
#' core's rules; NA, Inf, TRUE and strings are refused here (they would change
#' meaning).
#' @noRd
as_py_shape <- function(x, arg) {
  expected <- "whole numbers, e.g. c(1, 28, 28)"
  if (is_py(x)) {
    return(x)
  }
  if (is.list(x)) {
    ok <- all(vapply(x, function(v) is.numeric(v) && !is.logical(v) && length(v) == 1, logical(1)))
    if (!ok) arg_error(arg, expected, describe(x))
    x <- unlist(x)
  }
  if (is.logical(x) || !is.numeric(x) || any(!is.finite(x))) {
    arg_error(arg, expected, describe(x))
  }
  reticulate::tuple(lapply(x, function(v) if (is_whole(v)) py_int(v, arg) else as.double(v)))
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

#' The first choice when `x` is the untouched default vector of choices (R's
#' `c("a", "b")` idiom), else `x` itself: which values are allowed is the core's
#' rule, and its message names the argument (match.arg()'s would not).
#' @noRd
default_choice <- function(x, choices) {
  if (identical(x, choices)) choices[[1]] else x
}

#' A number -> Python float, with no rule on its range (the core checks it and its
#' message shows the value; NaN and Inf go through as they are). Only a value that
#' would reach Python as something else is refused: TRUE (Python's 1), NA
#' (reticulate passes a logical NA as True), a string, a vector.
#' @noRd
as_py_number <- function(x, arg) {
  if (is_py_tensor(x)) x <- x$item()
  if (is.logical(x) || !is.numeric(x) || length(x) != 1 || (is.na(x) && !is.nan(x))) {
    arg_error(arg, "a number", describe(x))
  }
  as.double(x)
}

#' A string -> Python str, several -> a Python list (the core says which are
#' allowed and names the argument); NA is refused (it would reach Python as "NA").
#' @noRd
as_py_string <- function(x, arg) {
  if (is.character(x) && anyNA(x)) arg_error(arg, "a string", describe(x))
  if (is.character(x) && length(x) != 1) {
    return(reticulate::r_to_py(as.list(x)))
  }
  x
}

#' Which converter each argument of the table-driven wrappers takes, by the
#' argument's name (the wrappers of R/layers-groups.R, R/models.R,
#' R/layers-quantile.R and R/transforms.R, through core_call()). Converters only
#' turn R values into the Python values they mean: the core checks ranges and
#' allowed values. An argument not in the table goes to Python as reticulate
#' converts it; `NULL` always goes as None.
#' @noRd
arg_table <- c(
  in_channels = "whole", in_fields = "whole", out_fields = "whole", num_fields = "whole",
  kernel_size = "whole", stride = "whole", padding = "whole", num_classes = "whole",
  num_groups = "whole", num_channels = "whole", num_features = "whole",
  num_knots = "whole", k = "whole", dx = "whole", dy = "whole", N = "whole",
  maximum_frequency = "whole", hidden_fields = "whole",
  widths = "wholes", normalized_shape = "wholes",
  bias = "flag", affine = "flag", elementwise_affine = "flag", track_running_stats = "flag",
  per_sample = "flag", flips = "flag",
  eps = "number", degrees = "number", max_degrees = "number", momentum = "number",
  mode = "string", method = "string", positions = "string", grad = "string", fn = "string",
  target = "target", dtype = "dtype",
  input_shape = "wholes", opset_version = "whole", check = "flag"
)

#' Convert the named list `args` of R values for Python, each by its converter in
#' arg_table.
#' @noRd
convert_args <- function(args) {
  out <- lapply(names(args), function(name) {
    x <- args[[name]]
    if (is.null(x)) {
      return(NULL)
    }
    kind <- arg_table[name]
    if (is.na(kind)) {
      return(x)
    }
    switch(kind,
      whole = as_py_int(x, name),
      wholes = as_py_shape(x, name),
      flag = as_py_flag(x, name),
      number = as_py_number(x, name),
      string = as_py_string(x, name),
      target = as_py_target(x, name),
      dtype = as_py_dtype(x, name)
    )
  })
  # list(a = NULL) keeps a NULL element (None) where `out[[i]] <- NULL` would drop it
  stats::setNames(out, names(args))
}
