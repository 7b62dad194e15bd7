#' Collect and trim when the process has grown since the last collection.
#'
#' Tensors that R received from the core (a converted R array, the value of
#' `reg(x)`) are freed only when R's garbage collector runs, and R does not run it
#' for memory that Python allocated: a loop written by hand in R, without an
#' optimizer step, then grows by every step's tensors. After its calls into the
#' core the package asks the core whether the resident memory grew by more than
#' 16 MB since the last collection; only then does it run a minor collection
#' (`gc(full = FALSE)`: a few milliseconds, where a full one takes a fifth of a
#' second in a session with torch loaded; the tensors in question are recent), once
#' in tens of steps, and give the freed pages back.
#' `EQUIVARIANCE_RELEASE_MEMORY=0` turns this off.
#' @noRd
release_memory_if_grown <- function() {
  memory <- .equivariance$memory
  if (is.null(memory)) {
    return(invisible(FALSE))
  }
  # Asking Python costs about 0.2 ms; one call in 8 is enough to catch 16 MB.
  calls <- if (is.null(.equivariance$memory_calls)) 1L else .equivariance$memory_calls + 1L
  .equivariance$memory_calls <- calls %% 8L
  if (calls < 8L || !isTRUE(memory$memory_grew(16))) {
    return(invisible(FALSE))
  }
  gc(verbose = FALSE, full = FALSE)
  memory$release_free_memory()
  memory$reset_memory_floor()
  invisible(TRUE)
}
