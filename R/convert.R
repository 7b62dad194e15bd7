# The ONE place where R values become Python values (and tensors come back as R
# arrays). Each converter checks its argument and stops with an R error that names
# it; Python exceptions caused by bad input are turned into R errors by call_py().

is_py <- function(x) inherits(x, "python.builtin.object")

is_py_tensor <- function(x) inherits(x, "torch.Tensor")

arg_error <- function(arg, expected, got = NULL) {
  detail <- if (is.null(got)) "" else paste0(", got ", got)
  stop("`", arg, "` must be ", expected, detail, ".", call. = FALSE)
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
    return(if (is.character(x)) paste0('"', x, '"') else format(x))
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
  as.integer(x)
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
  reticulate::tuple(as.list(as.integer(x)))
}

#' Non-negative real number -> Python float.
#' @noRd
as_py_nonneg <- function(x, arg) {
  if (is_py_tensor(x)) x <- x$item()
  if (is.logical(x) || !is.numeric(x) || length(x) != 1 || is.na(x) ||
    !is.finite(x) || x < 0) {
    arg_error(arg, "a non-negative number", describe(x))
  }
  as.double(x)
}

#' Bounds -> numpy array whose last dimension is (lower, upper).
#'
#' Accepts c(lower, upper), list(lower, upper), list(lower = a, upper = b) with a
#' and b numbers or arrays of the same shape, an R array whose last dimension is 2,
#' or a tensor.
#' @noRd
as_py_bounds <- function(x, arg) {
  if (is_py(x)) {
    return(x)
  }
  expected <- "c(lower, upper), list(lower = , upper = ) or an array whose last dimension is 2"
  if (is.list(x)) {
    if (length(x) != 2) arg_error(arg, expected, describe(x))
    if (!is.null(names(x)) && all(c("lower", "upper") %in% names(x))) {
      x <- x[c("lower", "upper")]
    } else if (!is.null(names(x)) && any(nzchar(names(x)))) {
      arg_error(arg, expected, paste0("names ", paste(names(x), collapse = ", ")))
    }
    lower <- x[[1]]
    upper <- x[[2]]
    if (!is.numeric(lower) || !is.numeric(upper)) arg_error(arg, expected, describe(x))
    if (length(lower) == 1 && length(upper) == 1) {
      x <- c(lower, upper)
    } else {
      dl <- if (is.null(dim(lower))) length(lower) else dim(lower)
      du <- if (is.null(dim(upper))) length(upper) else dim(upper)
      if (length(lower) == 1) lower <- array(lower, du)
      if (length(upper) == 1) upper <- array(upper, dl)
      d <- if (is.null(dim(lower))) length(lower) else dim(lower)
      if (!identical(as.integer(d), as.integer(if (is.null(dim(upper))) length(upper) else dim(upper)))) {
        arg_error(arg, "lower and upper bounds of the same shape", describe(x))
      }
      x <- array(c(lower, upper), dim = c(d, 2))
    }
  }
  if (!is.numeric(x) || is.logical(x) || anyNA(x)) arg_error(arg, expected, describe(x))
  d <- if (is.null(dim(x))) length(x) else dim(x)
  if (d[length(d)] != 2) arg_error(arg, expected, paste0("a last dimension of ", d[length(d)]))
  if (is.null(dim(x))) {
    if (x[1] > x[2]) arg_error(arg, "lower <= upper", paste0("lower ", x[1], " > upper ", x[2]))
  } else {
    n <- length(x) / 2
    if (any(x[seq_len(n)] > x[n + seq_len(n)])) {
      arg_error(arg, "lower <= upper everywhere", "a lower bound above its upper bound")
    }
  }
  reticulate::np_array(x, dtype = "float64")
}

#' Distance -> p (a float), "inf", a cross-entropy name, or a Python callable.
#' @noRd
as_py_dist <- function(x, arg = "dist") {
  expected <- paste(
    "a number p >= 1, Inf, \"inf\", \"cross_entropy\", \"cross_entropy_logits\"",
    "or a function(a, b)"
  )
  if (is.function(x) || is_py(x)) {
    return(x)
  }
  if (is.character(x) && length(x) == 1 && !is.na(x)) {
    if (!x %in% c("inf", "cross_entropy", "cross_entropy_logits")) arg_error(arg, expected, describe(x))
    return(x)
  }
  if (is.numeric(x) && !is.logical(x) && length(x) == 1 && !is.na(x)) {
    if (is.infinite(x) && x > 0) {
      return("inf")
    }
    if (x < 1) arg_error(arg, "a p-norm with p >= 1", describe(x))
    return(if (is_whole(x)) as.integer(x) else as.double(x))
  }
  arg_error(arg, expected, describe(x))
}

#' R function or Python callable -> Python callable.
#' @noRd
as_py_callable <- function(f, arg) {
  if (is.function(f)) {
    return(reticulate::r_to_py(f))
  }
  if (is_py(f) && reticulate::py_has_attr(f, "__call__")) {
    return(f)
  }
  arg_error(arg, "a function", describe(f))
}

#' One transform as an R list -> Python tuple (f_out, f_in, epsilon, lambda_eq) or
#' (f, epsilon, lambda_eq).
#' @noRd
as_py_transform <- function(t, i) {
  arg <- paste0("transforms[[", i, "]]")
  expected <- "list(f_out, f_in, epsilon, lambda) or list(f, epsilon, lambda)"
  if (!is.list(t) || is_py(t)) arg_error(arg, expected, describe(t))
  if (!length(t) %in% c(3, 4)) arg_error(arg, expected, paste0("a list of length ", length(t)))
  nms <- names(t)
  if (!is.null(nms) && any(nzchar(nms))) {
    allowed <- if (length(t) == 4) c("f_out", "f_in", "epsilon", "lambda") else c("f", "epsilon", "lambda")
    unknown <- setdiff(nms[nzchar(nms)], allowed)
    if (length(unknown)) {
      arg_error(arg, paste0("a list with names ", paste(allowed, collapse = ", ")), paste0("name ", unknown[1]))
    }
    if (all(nzchar(nms))) t <- t[allowed]
  }
  k <- length(t)
  funs <- lapply(seq_len(k - 2), function(j) {
    role <- if (k == 3) "f" else c("f_out", "f_in")[j]
    as_py_callable(t[[j]], paste0(arg, " ", role))
  })
  epsilon <- as_py_nonneg(t[[k - 1]], paste0(arg, " epsilon"))
  lambda <- as_py_nonneg(t[[k]], paste0(arg, " lambda"))
  reticulate::tuple(c(funs, list(epsilon, lambda)))
}

#' List of transforms -> Python list of tuples.
#' @noRd
as_py_transforms <- function(x, arg = "transforms") {
  if (!is.list(x) || is_py(x)) {
    arg_error(arg, "a list of transforms, each list(f_out, f_in, epsilon, lambda) or list(f, epsilon, lambda)", describe(x))
  }
  if (length(x) == 0) arg_error(arg, "a non-empty list of transforms", "an empty list")
  if (!is.list(x[[1]]) || is_py(x[[1]])) {
    arg_error(arg, "a list of transforms; wrap a single transform in list(), e.g. list(list(f, 0, 1))", "a single transform")
  }
  reticulate::r_to_py(lapply(seq_along(x), function(i) as_py_transform(x[[i]], i)))
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
  if (!is.numeric(x) && !is.logical(x)) arg_error(arg, "a numeric array or a torch tensor", describe(x))
  if (anyNA(x)) arg_error(arg, "an array without missing values", "NA")
  if (is.null(dim(x))) x <- array(x, dim = length(x))
  torch_module()$tensor(reticulate::np_array(x, dtype = dtype))
}

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

#' Evaluate a call into Python, turning a Python exception into an R error whose
#' message is the exception's (no traceback).
#' @noRd
call_py <- function(expr) {
  tryCatch(expr, error = function(e) {
    msg <- conditionMessage(e)
    if (inherits(e, "Rcpp::exception") || grepl("^[A-Za-z_.]*(Error|Exception)\\b", msg)) {
      msg <- sub("\n*Detailed traceback:.*$", "", msg)
      msg <- sub("\n*Run `reticulate::py_last_error\\(\\)` for details\\.?", "", msg)
      msg <- sub("^(ValueError|TypeError): ", "", msg)
      msg <- trimws(msg)
      stop(msg, call. = FALSE)
    }
    stop(e)
  })
}

# -- C4 and escnn --

#' TRUE/FALSE -> Python bool.
#' @noRd
as_py_flag <- function(x, arg) {
  if (!is.logical(x) || length(x) != 1 || is.na(x)) {
    arg_error(arg, "TRUE or FALSE", describe(x))
  }
  x
}

#' Order of a rotation group: a positive whole number, or -1 for SO(2).
#' @noRd
as_py_group_order <- function(x, arg) {
  if (is.numeric(x) && length(x) == 1 && !is.na(x) && x == -1) {
    return(-1L)
  }
  if (is.logical(x) || !is.numeric(x) || length(x) != 1 || !is_whole(x) || x < 1) {
    arg_error(arg, "a positive whole number, or -1 for SO(2)", describe(x))
  }
  as.integer(x)
}

#' Representation names (character vector) or a list of escnn representations
#' (names allowed inside the list) -> Python list.
#' @noRd
as_py_reprs <- function(x, arg) {
  expected <- 'representation names such as c("trivial", "regular", "irrep_1") or a list of representations'
  if (is.character(x)) {
    if (length(x) == 0 || anyNA(x) || !all(nzchar(x))) arg_error(arg, expected, describe(x))
    return(reticulate::r_to_py(as.list(x)))
  }
  if (is_py(x)) {
    return(reticulate::r_to_py(list(x)))
  }
  if (is.list(x) && length(x) > 0) {
    ok <- vapply(x, function(v) is_py(v) || (is.character(v) && length(v) == 1 && !is.na(v)), logical(1))
    if (!all(ok)) arg_error(arg, expected, describe(x))
    return(reticulate::r_to_py(unname(x)))
  }
  arg_error(arg, expected, describe(x))
}

#' Group element: a whole number k (rotation by k steps) or an escnn element.
#' @noRd
as_py_element <- function(x, arg) {
  if (is_py(x)) {
    return(x)
  }
  as_py_int(x, arg, min = -.Machine$integer.max)
}

#' Action of C4 for check_equivariance(): a name or a function(x, k).
#' @noRd
as_py_action <- function(x, arg) {
  if (is.function(x) || is_py(x)) {
    return(as_py_callable(x, arg))
  }
  choices <- c("auto", "invariant", "rotate", "regular")
  if (!is.character(x) || length(x) != 1 || is.na(x) || !x %in% choices) {
    arg_error(arg, paste0('one of "', paste(choices, collapse = '", "'), '" or a function(x, k)'), describe(x))
  }
  x
}

# -- quantile maps --

#' Target distribution -> a name, a Python callable or a distribution.
#'
#' A name is passed on (the core checks it); an R `function(q)` receives a numeric
#' vector of probabilities and must return as many quantiles.
#' @noRd
as_py_target <- function(x, arg = "target") {
  if (is.function(x)) {
    # convert = TRUE: the function receives R numeric vectors, not numpy objects
    f <- reticulate::r_to_py(x, convert = TRUE)
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

#' One of a set of strings.
#' @noRd
as_py_choice <- function(x, choices, arg) {
  if (!is.character(x) || length(x) != 1 || is.na(x) || !x %in% choices) {
    arg_error(arg, paste0("one of ", paste0('"', choices, '"', collapse = ", ")), describe(x))
  }
  x
}

#' NULL (cumulative average) or a number in [0, 1].
#' @noRd
as_py_momentum <- function(x, arg = "momentum") {
  if (is.null(x)) {
    return(NULL)
  }
  if (is.logical(x) || !is.numeric(x) || length(x) != 1 || is.na(x) || x < 0 || x > 1) {
    arg_error(arg, "a number in [0, 1] or NULL", describe(x))
  }
  as.double(x)
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

#' A data set for fit_model()/evaluate_rotations() -> Python object.
#'
#' Accepts what fashion_mnist() returns, a Python data set (FashionMNIST,
#' TensorDataset), or list(images = , labels = ) / list(x = , y = ) holding R arrays
#' or tensors (images of dimension c(N, ...), labels whole numbers from 0).
#' @noRd
as_py_dataset <- function(x, arg = "data") {
  if (inherits(x, "equivariance_dataset")) {
    return(x$py)
  }
  if (is_py(x)) {
    return(x)
  }
  expected <- "a data set from fashion_mnist() or list(images = , labels = )"
  if (!is.list(x) || length(x) < 2) arg_error(arg, expected, describe(x))
  keys <- if (all(c("images", "labels") %in% names(x))) c("images", "labels") else c("x", "y")
  if (!all(keys %in% names(x))) arg_error(arg, expected, describe(x))
  images <- as_py_tensor(x[[keys[1]]], paste0(arg, "$", keys[1]))
  labels <- x[[keys[2]]]
  if (is.factor(labels)) labels <- as.integer(labels) - 1L
  if (!is_py_tensor(labels)) {
    if (!is.numeric(labels) || !all(vapply(labels, is_whole, logical(1))) || any(labels < 0)) {
      arg_error(paste0(arg, "$", keys[2]), "whole numbers >= 0 (class indices)", describe(labels))
    }
  }
  labels <- as_py_tensor(labels, paste0(arg, "$", keys[2]), dtype = "int64")
  reticulate::tuple(images, labels)
}

#' A torch nn.Module (checked, not converted).
#' @noRd
as_py_module <- function(x, arg = "model") {
  if (!inherits(x, "torch.nn.modules.module.Module")) {
    arg_error(arg, "a torch nn.Module", describe(x))
  }
  x
}

#' Positive finite number -> Python float.
#' @noRd
as_py_positive <- function(x, arg) {
  if (is.logical(x) || !is.numeric(x) || length(x) != 1 || is.na(x) || !is.finite(x) || x <= 0) {
    arg_error(arg, "a positive number", describe(x))
  }
  as.double(x)
}

#' NULL or a non-negative whole number -> NULL or Python int.
#' @noRd
as_py_seed <- function(x, arg = "seed") {
  if (is.null(x)) {
    return(NULL)
  }
  if (is.logical(x) || !is.numeric(x) || length(x) != 1 || !is_whole(x) || x < 0 || x > .Machine$integer.max) {
    arg_error(arg, "NULL or a non-negative whole number", describe(x))
  }
  as.integer(x)
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

#' Quarter turns -> Python list of ints.
#' @noRd
as_py_quarter_turns <- function(x, arg = "rotations") {
  if (is.logical(x) || !is.numeric(x) || length(x) == 0 || !all(vapply(x, is_whole, logical(1)))) {
    arg_error(arg, "whole numbers of quarter turns, e.g. 0:3", describe(x))
  }
  if (any(abs(x) >= 4 & x %% 90 == 0)) {
    arg_error(arg, "quarter turns (0:3 for 0, 90, 180 and 270 degrees), not degrees", describe(x))
  }
  reticulate::r_to_py(as.list(as.integer(x)))
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
