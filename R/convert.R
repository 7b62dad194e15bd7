# Converters for the arguments of particular functions (transforms, bounds,
# distances, data sets, ...). The reusable ones (whole numbers, shapes, flags,
# tensors) are in R/arg-transformers.R; errors are classed conditions
# (R/conditions.R), and Python exceptions become the same conditions through
# call_py().

#' Bounds -> numpy array whose last dimension is (lower, upper).
#'
#' Converts c(lower, upper), list(lower, upper), list(lower = a, upper = b) with a
#' and b numbers or arrays of the same shape, or an R array whose last dimension is
#' 2; a Python object is passed on. Which bounds are valid (finite, lower <= upper,
#' broadcastable to the shape) is the core's rule.
#' @noRd
as_py_bounds <- function(x, arg) {
  if (is_py(x)) {
    return(x)
  }
  if (is.list(x)) x <- bounds_array(x, arg)
  if (!is.numeric(x) || is.logical(x)) {
    arg_error(arg, "c(lower, upper), list(lower = , upper = ) or an array whose last dimension is 2",
      describe(x), class = "type")
  }
  reticulate::np_array(if (is.null(dim(x))) as.double(x) else x, dtype = "float64")
}

#' list(lower, upper) or list(lower = , upper = ) -> one array, lower then upper
#' along a last dimension of 2 (R's list forms have no Python counterpart).
#' @noRd
bounds_array <- function(x, arg) {
  expected <- "list(lower, upper) or list(lower = , upper = )"
  nms <- names(x)
  if (length(x) != 2) arg_error(arg, expected, describe(x))
  if (!is.null(nms) && all(c("lower", "upper") %in% nms)) {
    x <- x[c("lower", "upper")]
  } else if (!is.null(nms) && any(nzchar(nms))) {
    arg_error(arg, expected, paste0("names ", paste(nms, collapse = ", ")))
  }
  lower <- x[[1]]
  upper <- x[[2]]
  if (!is.numeric(lower) || !is.numeric(upper)) arg_error(arg, expected, describe(x), class = "type")
  if (length(lower) == 1 && length(upper) == 1) {
    return(c(lower, upper))
  }
  shape_of <- function(v) if (is.null(dim(v))) length(v) else dim(v)
  if (length(lower) == 1) lower <- array(lower, shape_of(upper))
  if (length(upper) == 1) upper <- array(upper, shape_of(lower))
  if (!identical(as.integer(shape_of(lower)), as.integer(shape_of(upper)))) {
    arg_error(arg, "lower and upper bounds of the same shape", describe(x))
  }
  array(c(lower, upper), dim = c(shape_of(lower), 2))
}

#' Distance -> a number p, a name, or a function; the core says which are valid.
#'
#' R-only meanings are settled here: `Inf` is the name "inf" and a whole number is a
#' Python int.
#' @noRd
as_py_dist <- function(x, arg = "dist") {
  if (is.function(x) || is_py(x)) {
    return(x)
  }
  if (length(x) == 1 && is.na(x)) arg_error(arg, "a number, a distance name or a function", "NA")
  if (is.numeric(x) && !is.logical(x) && length(x) == 1) {
    if (is.infinite(x) && x > 0) {
      return("inf")
    }
    return(if (is_whole(x)) py_int(x, arg) else as.double(x))
  }
  if (is.character(x) && length(x) == 1) {
    return(x)
  }
  arg_error(arg, "a number p >= 1, Inf, a distance name such as \"kl_logits\" or a function(a, b)",
    describe(x), class = "type")
}

#' One transform as an R list -> Python tuple (f_out, f_in, epsilon, lambda_eq) or
#' (f, epsilon, lambda_eq).
#'
#' Only R's own forms are handled here (names, R functions, R numbers); what a
#' transform must hold is checked by the core, whose messages count from 0.
#' @noRd
as_py_transform <- function(t, i) {
  if (!is.list(t) || is_py(t)) {
    return(t)
  }
  nms <- names(t)
  if (!is.null(nms) && any(nzchar(nms))) {
    allowed <- if (length(t) == 4) c("f_out", "f_in", "epsilon", "lambda") else c("f", "epsilon", "lambda")
    unknown <- setdiff(nms[nzchar(nms)], allowed)
    if (length(unknown)) {
      arg_error(paste0("transforms[[", i, "]]"), paste0("a list with names ", paste(allowed, collapse = ", ")),
        paste0("name ", unknown[1]))
    }
    if (all(nzchar(nms)) && setequal(nms, allowed)) t <- t[allowed]
  }
  reticulate::tuple(lapply(unname(t), function(v) {
    if (is.numeric(v) && !is.logical(v) && length(v) == 1) as.double(v) else v
  }))
}

#' List of transforms -> Python list of tuples (a single transform is passed on as
#' a tuple, so that the core can say it must be wrapped in a list).
#' @noRd
as_py_transforms <- function(x, arg = "transforms") {
  if (!is.list(x) || is_py(x)) {
    return(x)
  }
  if (length(x) > 0 && is.function(x[[1]])) {
    return(as_py_transform(x, 1))
  }
  reticulate::r_to_py(lapply(seq_along(x), function(i) as_py_transform(x[[i]], i)))
}

# -- C4 and escnn --

#' Representation names (character vector) or escnn representations (one, or a
#' list that may mix them with names) -> Python list, or passed on: the core says
#' which names exist. NA is rejected here: it would reach Python as the name "NA".
#' @noRd
as_py_reprs <- function(x, arg) {
  if (is.character(x) && anyNA(x)) {
    arg_error(arg, 'representation names such as c("trivial", "regular")', describe(x))
  }
  if (is.character(x) || (is.list(x) && !is_py(x))) {
    return(reticulate::r_to_py(unname(as.list(x))))
  }
  x
}

#' Group element: a whole number k (rotation by k steps) or an escnn element; the
#' core checks which.
#' @noRd
as_py_element <- function(x, arg) {
  if (is_py(x)) x else as_py_int(x, arg)
}

#' Action of C4 for check_equivariance(): a name or a function(x, k), passed on
#' (the core lists the names it knows).
#' @noRd
as_py_action <- function(x, arg) {
  if (is.character(x) && length(x) == 1 && is.na(x)) arg_error(arg, "an action name or a function(x, k)", "NA")
  x
}

# -- quantile maps --

#' Target distribution -> a name, a Python callable or a distribution.
#'
#' A name is passed on (the core checks it); an R `function(q)` receives a numeric
#' vector of probabilities and must return as many quantiles.
#' @noRd
as_py_target <- function(x, arg = "target") {
  if (is_r_function(x)) {
    # convert = TRUE: the function receives R numeric vectors, not numpy objects
    f <- py_function(x, convert = TRUE)
    return(core()$quantile_maps$numpy_target(f, name = "R function"))
  }
  if (is_py(x)) {
    return(x)
  }
  if (is.character(x) && length(x) == 1 && !is.na(x) && nzchar(x)) {
    return(x)
  }
  arg_error(arg, "a target name such as \"gaussian\" or a function(q)", describe(x))
}

#' NULL (cumulative average) or a number -> None or a Python float; the core
#' checks the range.
#' @noRd
as_py_momentum <- function(x, arg = "momentum") {
  if (is.numeric(x) && !is.logical(x) && length(x) == 1) as.double(x) else x
}

#' NULL, "float32" or "float64" -> torch dtype.
#' @noRd
as_py_dtype <- function(x, arg = "dtype") {
  if (is.null(x) || is_py(x)) {
    return(x)
  }
  x <- as_py_choice(x, c("float32", "float64"), arg)
  torch_module()[[x]]
}

# -- data and training --

#' A torch nn.Module (checked, not converted).
#' @noRd
as_py_module <- function(x, arg = "model") {
  if (!inherits(x, "torch.nn.modules.module.Module")) {
    arg_error(arg, "a torch nn.Module", describe(x), class = "type")
  }
  x
}

#' NULL or a whole number -> NULL or Python int (which seeds torch accepts is the
#' core's rule).
#' @noRd
as_py_seed <- function(x, arg = "seed") {
  if (is.null(x)) NULL else as_py_int(x, arg)
}

#' NULL, an equivariance_regularizer (its Python object), a Python callable or an R
#' function returning a scalar tensor -> Python object.
#' @noRd
as_py_regularizer <- function(x, arg = "regularizer") {
  if (is.null(x)) {
    return(NULL)
  }
  py <- attr(x, "py")
  if (!is.null(py) && is_py(py)) {
    return(py)
  }
  if (is.function(x) || is_py(x)) {
    return(as_py_callable(x, arg))
  }
  arg_error(arg, "NULL or a regularizer made by equivariance_regularizer()", describe(x))
}

#' Quarter turns -> Python list (whole numbers as Python ints, anything else as it
#' is: the core says what a rotation must be).
#' @noRd
as_py_quarter_turns <- function(x, arg = "rotations") {
  if (anyNA(x)) arg_error(arg, "whole numbers of quarter turns, e.g. 0:3", "NA")
  if (is.numeric(x) && !is.logical(x) && length(x) > 0) {
    return(reticulate::r_to_py(lapply(x, function(v) if (is_whole(v)) py_int(v, arg) else v)))
  }
  x
}

# -- benchmark --

#' Built-in model names, or a named list of names, modules and functions -> Python.
#' @noRd
as_py_models <- function(x, arg = "models") {
  expected <- "built-in model names or a named list of models"
  if (is.character(x)) {
    if (length(x) == 0 || anyNA(x)) arg_error(arg, expected, describe(x))
    return(reticulate::r_to_py(as.list(x)))
  }
  if (!is.list(x) || length(x) == 0) arg_error(arg, expected, describe(x))
  labels <- names(x)
  if (is.null(labels) || anyNA(labels) || any(!nzchar(labels))) {
    arg_error(arg, "a list with a name for every model", describe(x))
  }
  items <- lapply(seq_along(x), function(i) {
    m <- x[[i]]
    where <- paste0(arg, "$", labels[i])
    if (is.character(m)) {
      check_string(m, where)
    } else if (inherits(m, "torch.nn.modules.module.Module")) {
      m
    } else if (is.function(m) || is_py(m)) {
      as_py_callable(m, where)
    } else {
      arg_error(where, "a built-in model name, a torch module or a function returning one", describe(m))
    }
  })
  reticulate::py_dict(as.list(labels), items)
}
