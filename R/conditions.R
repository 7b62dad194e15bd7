# Errors a user can cause, as classed R conditions. The Python core raises
# ValueError or TypeError with a message that names the argument; with_py_errors()
# turns them into R conditions of class equivariance_value_error or
# equivariance_type_error (both equivariance_error), carrying Python's message
# only. Errors raised in R by the package itself use the same classes, through
# abort_equivariance(), so a caller can catch any of them with one handler:
#   tryCatch(fit_model(...), equivariance_error = function(e) conditionMessage(e))

#' Signal an equivariance error.
#'
#' @param message The message, which names the argument in backticks.
#' @param class `"value"` (a value out of range, the R counterpart of Python's
#'   ValueError), `"type"` (a value of the wrong kind, TypeError) or `"setup"`
#'   (Python or one of its packages is missing).
#' @param call The call shown with the message; by default the call of the
#'   exported function the user called.
#' @noRd
abort_equivariance <- function(message, class = c("value", "type", "setup"), call = user_call()) {
  class <- match.arg(class)
  stop(equivariance_condition(message, class, call))
}

equivariance_condition <- function(message, class, call) {
  sub <- if (is.null(class)) NULL else paste0("equivariance_", class, "_error")
  structure(
    class = c(sub, "equivariance_error", "error", "condition"),
    list(message = message, call = call)
  )
}

#' The call of the outermost function of this package on the stack.
#'
#' That is the function the user called (or the closure they were given, such
#' as the regularizer's `reg(x)`); internal helpers are called by it, so they
#' sit deeper. NULL when no package function is on the stack.
#' @noRd
user_call <- function() {
  ns <- topenv(environment(user_call))
  calls <- sys.calls()
  for (i in seq_along(calls)) {
    f <- sys.function(i)
    env <- environment(f)
    if (!is.null(env) && identical(topenv(env), ns) && !identical(f, user_call)) {
      return(calls[[i]])
    }
  }
  NULL
}

#' Evaluate a call into Python, turning Python's ValueError and TypeError into
#' classed R conditions whose message is Python's (no traceback).
#'
#' Other Python exceptions (a missing file, say) become plain `equivariance_error`s
#' whose message keeps the exception's type, as "FileNotFoundError: ..."; their
#' traceback stays available from reticulate::py_last_error(). R errors are
#' re-signalled unchanged.
#' @noRd
with_py_errors <- function(expr, call = user_call()) {
  tryCatch(expr, error = function(e) {
    if (inherits(e, "equivariance_error")) stop(e)
    kind <- python_error_kind(e)
    if (is.null(kind)) stop(e)
    own <- r_error_inside(e)
    if (!is.null(own)) stop(own) # the user's own R error, with its class
    msg <- r_words(python_error_message(e, keep_type = kind == "other"))
    stop(equivariance_condition(msg, if (kind == "other") NULL else kind, call))
  })
}

#' with_py_errors() for the R layer's calls into the core; afterwards, the memory
#' that R's tensors hold is released when the process has grown (see
#' release_memory_if_grown()).
#' @noRd
call_py <- function(expr) {
  call <- user_call()
  # while the core runs for an R caller, its messages count labels from 1
  token <- r_caller_begin()
  on.exit(r_caller_end(token), add = TRUE)
  value <- with_py_warnings(with_py_errors(expr, call = call), call)
  release_memory_if_grown()
  value
}

#' An R function as a Python callable whose errors keep their R class: reticulate
#' turns an R error raised inside it into a Python RuntimeError carrying only the
#' message; the condition is kept here, and with_py_errors() signals it again when
#' that error comes back to R (tryCatch(my_error = ) then works).
#' @noRd
py_function <- function(f, convert = TRUE) {
  force(f)
  kept <- function(...) {
    withCallingHandlers(f(...), error = function(e) .equivariance$r_error <- e)
  }
  reticulate::r_to_py(kept, convert = convert)
}

#' The R condition raised inside a py_function() that Python error `e` carries
#' back, or NULL (and forget it either way).
#' @noRd
r_error_inside <- function(e) {
  own <- .equivariance$r_error
  .equivariance$r_error <- NULL
  if (is.null(own) || !grepl(conditionMessage(own), conditionMessage(e), fixed = TRUE)) {
    return(NULL)
  }
  own
}

#' Evaluate `expr` (a call into the core) recording Python's warnings, then signal
#' each as an R warning of class `equivariance_warning`, so that suppressWarnings()
#' and tryCatch(warning = ) handle them (Python would print them on stderr). Before
#' the core is loaded there is nothing to record.
#' @noRd
with_py_warnings <- function(expr, call = NULL) {
  if (is.null(.equivariance$core)) {
    return(expr)
  }
  warnings <- reticulate::import("warnings", convert = FALSE)
  context <- warnings$catch_warnings(record = TRUE)
  log <- context$`__enter__`()
  on.exit({
    context$`__exit__`(NULL, NULL, NULL)
    for (w in reticulate::iterate(log)) {
      warning(structure(
        class = c("equivariance_warning", "warning", "condition"),
        list(message = reticulate::py_str(w$message), call = call)
      ))
    }
  })
  expr
}

#' Tell the core that its caller is R (the context variable
#' `equivariance._validation.LABEL_BASE`, 1 while set), for as long as the core
#' runs; r_caller_end() restores the value it had. Nothing happens before the
#' core is loaded: a call that fails to load it raises no label message.
#' @noRd
r_caller_begin <- function() {
  validation <- .equivariance$validation
  if (is.null(validation)) {
    return(NULL)
  }
  validation$LABEL_BASE$set(1L)
}

r_caller_end <- function(token) {
  if (!is.null(token)) .equivariance$validation$LABEL_BASE$reset(token)
  invisible()
}

#' "value" or "type" when `e` is a Python ValueError or TypeError (or a subclass),
#' "other" for another Python exception, NULL for an R error.
#'
#' reticulate before 1.26 signals a plain Rcpp::exception whose message starts
#' with the exception's type; the exception itself is kept by py_last_error().
#' Later versions signal a condition of class python.builtin.ValueError etc.
#' @noRd
python_error_kind <- function(e) {
  if (inherits(e, "python.builtin.TypeError")) {
    return("type")
  }
  if (inherits(e, "python.builtin.ValueError")) {
    return("value")
  }
  if (inherits(e, "python.builtin.BaseException")) {
    return("other")
  }
  if (!inherits(e, "Rcpp::exception")) {
    return(NULL)
  }
  last <- tryCatch(reticulate::py_last_error(), error = function(err) NULL)
  exception <- attr(last, "exception")
  # py_last_error() outlives its error: use it only if it is this one
  if (is.null(exception) || !starts_with_type(conditionMessage(e), last$type)) {
    return(NULL)
  }
  builtins <- reticulate::import_builtins(convert = FALSE)
  is_a <- function(cls) reticulate::py_to_r(builtins$isinstance(exception, cls))
  if (is_a(builtins$TypeError)) {
    return("type")
  }
  if (is_a(builtins$ValueError)) {
    return("value")
  }
  "other"
}

#' Does `msg` start with the exception type `type`, bare ("FormatError: ...") or
#' qualified by its module ("equivariance.persistence.FormatError: ...")? Either
#' side may carry the module, depending on the reticulate version.
#' @noRd
starts_with_type <- function(msg, type) {
  bare <- sub("^.*\\.", "", type)
  grepl(paste0("^([A-Za-z_][A-Za-z0-9_]*\\.)*", bare, ":"), msg)
}

#' Python's message of the exception: the text after "ValueError: " (kept with
#' `keep_type`), without reticulate's traceback or its hint to run py_last_error().
#' @noRd
python_error_message <- function(e, keep_type = FALSE) {
  msg <- conditionMessage(e)
  msg <- sub("\n*Detailed traceback:.*$", "", msg)
  msg <- sub("\n*Run `reticulate::py_last_error\\(\\)` for details\\.?.*$", "", msg)
  if (!keep_type) msg <- sub("^[A-Za-z_.]+: ", "", msg)
  trimws(msg)
}

#' Python's words in a message of the core, as an R caller writes them: `NULL`
#' (None, NoneType), `TRUE`/`FALSE`, `c("a", "b")` for a list, `"a"` for a
#' string, logical and integer values for boolean and integer tensors, `2^64` for
#' `2**64`, `NaN` and `Inf`. Argument names in backticks are left alone.
#' @noRd
r_words <- function(msg) {
  parts <- strsplit(msg, "`", fixed = TRUE)[[1]]
  # the odd pieces are outside backticks
  outside <- seq_along(parts) %% 2 == 1
  parts[outside] <- vapply(parts[outside], r_words_plain, character(1), USE.NAMES = FALSE)
  out <- paste(parts, collapse = "`")
  if (endsWith(msg, "`")) out <- paste0(out, "`")
  out
}

r_words_plain <- function(x) {
  for (rule in r_word_rules) x <- gsub(rule[[1]], rule[[2]], x, perl = TRUE)
  x
}

# An item of a Python list or tuple: a string, a number, None, True, False, "...".
py_item <- "(?:'[^'\\n]*'|\"[^\"\\n]*\"|-?[0-9][0-9.e+-]*|None|True|False|nan|inf|\\.\\.\\.)"
py_items <- paste0(py_item, "(?:, ", py_item, ")*")
r_number <- "(-?[0-9][0-9.e+-]*)"

#' The rewrites of r_words_plain(), in order: (pattern, replacement) pairs.
#' @noRd
r_word_rules <- list(
  # tensors' element types
  c("dtype torch\\.bool\\b", "logical values"),
  c("dtype torch\\.u?int(8|16|32|64)\\b", "integer values"),
  c("dtype torch\\.complex(32|64|128)\\b", "complex values"),
  c("\\bNoneType\\b", "NULL"),
  c("\\ba (non-empty )?sequence of\\b", "a \\1vector of"),
  c("\\ba dict\\b", "a named list"),
  # Python lists, and tuples given as values: c(...)
  c(paste0("\\[(", py_items, ")\\]"), "c(\\1)"),
  c(paste0("(got |, got )\\((", py_items, "),?\\)"), "\\1c(\\2)"),
  c("(got |, got )\\[\\]", "\\1list()"),
  # but a numeric interval such as "in [0, 1]" stays an interval
  c(paste0("\\b(in|within|of|to) c\\(", r_number, ", ", r_number, "\\)"), "\\1 [\\2, \\3]"),
  # 'a' -> "a" (not the apostrophe of "model's")
  c("(?<![\\w'])'([^'\\n]*)'(?!\\w)", "\"\\1\""),
  c("\\bNone\\b", "NULL"),
  c("\\bTrue\\b", "TRUE"),
  c("\\bFalse\\b", "FALSE"),
  c("(?<![\\w.])nan\\b", "NaN"),
  c("(?<![\\w.'\"])(-?)inf\\b(?!['\"])", "\\1Inf"),
  c("([0-9])\\*\\*([0-9])", "\\1^\\2"),
  # Python's 5.0 is R's 5
  c("(?<![\\w.])(-?[0-9]+)\\.0(?![0-9.]|e[0-9+-])", "\\1")
)
