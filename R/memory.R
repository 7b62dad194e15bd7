#' Collect and trim when the process has grown since the last collection.
#'
#' Tensors that R received from the core (a converted R array, the value of
#' `reg(x)`) are freed only when R's garbage collector runs, and R does not run it
#' for memory that Python allocated: a loop written by hand in R, without an
#' optimizer step, then grows by every step's tensors. After its calls into the
#' core the package asks the core whether the resident memory grew by more than
#' 64 MB since the last collection; only then does it run `gc()` (tens of
#' milliseconds, once in hundreds of steps) and give the freed pages back.
#' `EQUIVARIANCE_RELEASE_MEMORY=0` turns this off.
#' @noRd
release_memory_if_grown <- function() {
  memory <- .equivariance$memory
  if (is.null(memory)) {
    return(invisible(FALSE))
  }
  # Asking Python costs about 0.2 ms; one call in 8 is enough to catch 64 MB.
  calls <- if (is.null(.equivariance$memory_calls)) 1L else .equivariance$memory_calls + 1L
  .equivariance$memory_calls <- calls %% 8L
  if (calls < 8L || !isTRUE(memory$memory_grew(64))) {
    return(invisible(FALSE))
  }
  gc(verbose = FALSE)
  memory$release_free_memory()
  memory$reset_memory_floor()
  invisible(TRUE)
}
