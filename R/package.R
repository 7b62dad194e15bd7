# Finding Python and importing the core on first use (delay-loaded).

#' Name of the environment the package looks for.
#' @noRd
equivariance_envname <- function() {
  getOption("equivariance.envname", "r-equivariance")
}

#' Point reticulate at the package's virtualenv unless the user chose a Python.
#'
#' Called from .onLoad, before Python starts. It uses reticulate's own hint for
#' packages, use_virtualenv(required = FALSE): reticulate records the preference
#' and nothing else in the process changes (no environment variable is set).
#' RETICULATE_PYTHON or RETICULATE_PYTHON_ENV, use_python(required = TRUE) and an
#' already started Python all win over the hint, as reticulate documents.
#' @noRd
select_python <- function() {
  user_choice <- nzchar(Sys.getenv("RETICULATE_PYTHON")) ||
    nzchar(Sys.getenv("RETICULATE_PYTHON_ENV"))
  if (user_choice || reticulate::py_available(initialize = FALSE)) {
    return(invisible(FALSE))
  }
  envname <- equivariance_envname()
  found <- isTRUE(tryCatch(reticulate::virtualenv_exists(envname), error = function(e) FALSE))
  if (found) {
    reticulate::use_virtualenv(envname, required = FALSE)
  }
  invisible(found)
}

missing_python_error <- function(what) {
  abort_equivariance(paste0(
    "equivariance needs Python with the packages torch and numpy (", what, ").\n",
    "Run install_equivariance() once to create the environment '",
    equivariance_envname(), "', then restart R."
  ), class = "setup")
}

#' The Python core (the `equivariance` module), imported on first use.
#'
#' Stops with an R error naming install_equivariance() when Python or one of the
#' core's packages is missing.
#' @noRd
core <- function() {
  if (!is.null(.equivariance$core)) {
    return(.equivariance$core)
  }
  ok <- tryCatch(reticulate::py_available(initialize = TRUE), error = function(e) FALSE)
  if (!isTRUE(ok)) {
    missing_python_error("no Python interpreter could be started")
  }
  for (module in c("numpy", "torch")) {
    if (!reticulate::py_module_available(module)) {
      missing_python_error(paste0(
        "the Python module '", module, "' is missing from ",
        reticulate::py_config()$python
      ))
    }
  }
  path <- system.file("python", package = "equivariance")
  .equivariance$core <- reticulate::import_from_path("equivariance", path = path)
  # call_py() tells the core through it that its caller counts labels from 1
  .equivariance$validation <- reticulate::import("equivariance._validation")
  install_memory_release(.equivariance$core)
  .equivariance$core
}

#' Give freed heap pages back to the system during R training loops.
#'
#' R keeps every Python object it received until its own garbage collector runs,
#' so a loop written by hand in R splits the C heap and grows the process. The
#' core's memory module trims the heap when the resident memory has grown; it is
#' installed here, explicitly, rather than as a side effect of importing Python.
#' Set `EQUIVARIANCE_RELEASE_MEMORY=0` to leave it out.
#' @noRd
install_memory_release <- function(py) {
  if (!identical(Sys.getenv("EQUIVARIANCE_RELEASE_MEMORY", "1"), "0")) {
    py$memory$release_memory_after_steps()
    .equivariance$memory <- py$memory
  }
  invisible()
}

#' The torch module.
#' @noRd
torch_module <- function() {
  core()
  reticulate::import("torch")
}

#' Is the package's Python core usable in this session?
#'
#' `TRUE` when Python, torch and numpy can be loaded, without raising an error.
#' Use it to guard code that should only run when set-up has been done.
#'
#' @return `TRUE` or `FALSE`.
#' @export
#' @examples
#' equivariance_available()
equivariance_available <- function() {
  isTRUE(tryCatch(!is.null(core()), error = function(e) FALSE))
}
