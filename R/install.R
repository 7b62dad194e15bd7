# install_equivariance(): the Python environment of the package.

#' Install the Python environment used by equivariance
#'
#' Creates (or updates) a Python virtual environment named `envname` in
#' reticulate's default location (`~/.virtualenvs` unless `WORKON_HOME` or
#' `RETICULATE_VIRTUALENV_ROOT` say otherwise) and installs the Python requirements
#' of the package's core into it: `torch` and `numpy` (the ranges in the file
#' `python/requirements.txt` shipped with the package, which `setup.py` also
#' reads), and `escnn` for the `escnn_*()` functions.
#'
#' In a new R session, `library(equivariance)` finds this environment without any
#' configuration: it hints reticulate towards it with
#' `reticulate::use_virtualenv(required = FALSE)` when Python has not started yet,
#' and sets no environment variable. `RETICULATE_PYTHON` or `RETICULATE_PYTHON_ENV`,
#' when set, take precedence. Set `options(equivariance.envname = )` before loading the package to
#' use an environment of another name.
#'
#' @param envname Name of the virtual environment.
#' @param python Python interpreter used to create the environment (`NULL`: the
#'   one reticulate finds).
#' @param ... Passed on to [reticulate::virtualenv_install()].
#' @return The path to the environment's Python interpreter, invisibly.
#' @export
#' @examples
#' \dontrun{
#' install_equivariance()
#' }
install_equivariance <- function(envname = "r-equivariance", python = NULL, ...) {
  envname <- check_string(envname, "envname")
  if (!reticulate::virtualenv_exists(envname)) {
    if (is.null(python)) {
      reticulate::virtualenv_create(envname)
    } else {
      reticulate::virtualenv_create(envname, python = python)
    }
  }
  reticulate::virtualenv_install(envname, packages = c(python_requirements(), "escnn"), ...)
  if (reticulate::py_available(initialize = FALSE)) {
    message("Restart R to use the new environment.")
  }
  invisible(reticulate::virtualenv_python(envname))
}

#' Python requirements of the core, one per element (the shipped requirements file).
#' @noRd
python_requirements <- function() {
  path <- system.file("python", "requirements.txt", package = "equivariance")
  lines <- trimws(sub("#.*$", "", readLines(path, warn = FALSE)))
  lines[nzchar(lines)]
}
