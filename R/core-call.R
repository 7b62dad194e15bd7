# The front door of the core: how a wrapper passes its arguments on. core_call()
# converts a wrapper's own arguments by the table of R/arg-transformers.R and calls
# the core through call_py(); check_core_dots() checks the names of the arguments a
# wrapper passes on through `...` against the core function's parameters first, so
# that a misspelt argument is an R error that names the R function and suggests
# the closest argument, not Python's "got an unexpected keyword argument".

#' Call the core's `py_fun` with the arguments of the wrapper that calls this.
#'
#' Every formal argument of the calling wrapper goes to `py_fun` by name (the
#' wrapper's argument names are the core's parameter names), converted by
#' convert_args(). A required argument left out is an error naming the wrapper.
#' @param py_fun A Python callable of the core, e.g. `core()$C4Conv2d`.
#' @noRd
core_call <- function(py_fun) {
  env <- parent.frame()
  wrapper <- sys.function(sys.parent())
  formals <- formals(wrapper)
  names <- setdiff(as.character(names(formals)), "...")
  for (name in names) {
    required <- identical(formals[[name]], quote(expr = ))
    if (required && eval(call("missing", as.name(name)), env)) {
      fun <- wrapper_name(sys.call(sys.parent()))
      abort_equivariance(paste0("`", fun, "()` needs `", name, "`, which has no default."))
    }
  }
  call_py(do.call(py_fun, convert_args(mget(names, envir = env))))
}

#' Check the names of the calling wrapper's `...` against the parameters of the
#' core function `py_fun` it passes them on to (see check_core_dots()); call it
#' first in the wrapper, as `check_dots(core()$fit, ...)`.
#' @noRd
check_dots <- function(py_fun, ...) {
  wrapper <- sys.function(sys.parent())
  own <- setdiff(as.character(names(formals(wrapper))), "...")
  check_core_dots(py_fun, list(...), wrapper_name(sys.call(sys.parent())), own)
}

#' The name of the wrapper of `call` (`fit_model` for `fit_model(...)`).
#' @noRd
wrapper_name <- function(call) {
  f <- call[[1]]
  name <- if (is.call(f)) deparse(f[[length(f)]]) else deparse(f)
  sub("^.*::", "", name)
}

#' Stop unless every name in `dots` is a parameter of `py_fun` (or an argument of
#' the wrapper, listed in `own`): an unnamed or unknown argument is an
#' `equivariance_argument_error` naming the wrapper `fun` and suggesting the
#' closest argument.
#' @noRd
check_core_dots <- function(py_fun, dots, fun, own = character()) {
  if (length(dots) == 0) {
    return(invisible())
  }
  names <- names(dots)
  if (is.null(names) || any(!nzchar(names))) {
    abort_argument(paste0(
      "`", fun, "()` passes the arguments in `...` on by name: name every one of them",
      " (got ", sum(if (is.null(names)) rep(TRUE, length(dots)) else !nzchar(names)),
      " without a name)."
    ))
  }
  params <- core_parameters(py_fun)
  if (is.null(params)) {
    return(invisible()) # the core function takes any keyword
  }
  known <- union(own, params)
  unknown <- setdiff(names, known)
  if (length(unknown) == 0) {
    return(invisible())
  }
  abort_unknown_argument(unknown[1], known, fun)
}

#' Stop with "`fun()` has no argument `name`; did you mean `...`?", the closest of
#' `known` (or the list of `known` when none is close).
#' @noRd
abort_unknown_argument <- function(name, known, fun) {
  hint <- closest_name(name, known)
  abort_argument(paste0(
    "`", fun, "()` has no argument `", name, "`",
    if (is.null(hint)) paste0(". Its arguments: ", paste0("`", known, "`", collapse = ", "), ".")
    else paste0("; did you mean `", hint, "`?")
  ))
}

abort_argument <- function(message) {
  stop(equivariance_condition(message, c("argument", "type"), user_call()))
}

#' The names of the parameters of the Python callable `py_fun` (NULL when it
#' takes any keyword), from inspect.signature() once per callable.
#' @noRd
core_parameters <- function(py_fun) {
  key <- reticulate::py_str(py_fun)
  cache <- .equivariance$signatures
  if (is.null(cache)) {
    cache <- .equivariance$signatures <- new.env(parent = emptyenv())
  }
  if (!is.null(cache[[key]])) {
    return(cache[[key]]$names)
  }
  kinds <- reticulate::py_eval(paste(
    "lambda f: [(p.name, p.kind.name) for p in",
    "__import__('inspect').signature(f).parameters.values()]"
  ))(py_fun)
  names <- vapply(kinds, `[[`, character(1), 1)
  kind <- vapply(kinds, `[[`, character(1), 2)
  value <- if ("VAR_KEYWORD" %in% kind) NULL else names[kind != "VAR_POSITIONAL"]
  cache[[key]] <- list(names = value)
  value
}

#' The candidate closest to the misspelt `name`, or NULL when none is close: the
#' one whose initials `name`'s words are (`learning_rate` -> `lr`), else the one
#' with the smallest edit distance, counting a shared beginning in its favour
#' (`validation_split` -> `validation_data`).
#' @noRd
closest_name <- function(name, candidates) {
  if (length(candidates) == 0) {
    return(NULL)
  }
  words <- strsplit(tolower(name), "[_.]+")[[1]]
  initials <- paste(substr(words, 1, 1), collapse = "")
  if (length(words) > 1 && initials %in% candidates) {
    return(initials)
  }
  distance <- as.vector(utils::adist(tolower(name), tolower(candidates)))
  shared <- vapply(candidates, function(c) common_prefix(tolower(name), tolower(c)), numeric(1))
  score <- distance - shared
  best <- which.min(score)
  close_enough <- distance[best] <= max(2, nchar(name) / 3) || shared[best] >= 4
  if (close_enough) candidates[best] else NULL
}

common_prefix <- function(a, b) {
  n <- min(nchar(a), nchar(b))
  if (n == 0) {
    return(0)
  }
  same <- strsplit(substr(a, 1, n), "")[[1]] == strsplit(substr(b, 1, n), "")[[1]]
  if (all(same)) n else which(!same)[1] - 1
}
