#' Seed every random generator the package uses
#'
#' Seeds torch (on the CPU and every CUDA device), numpy and Python's `random`, so
#' that what follows draws the same numbers again: a model built and trained by
#' [fit_model()] after the same `set_seed()` has the same weights (on the CPU; some
#' GPU kernels are not deterministic). R's own generator is not touched: use
#' [set.seed()] for it.
#'
#' @param seed A whole number from 0 to 2^53.
#' @return `seed`, invisibly.
#' @seealso [fit_model()] (its `seed` argument seeds one training run)
#' @export
#' @examples
#' if (equivariance_available()) {
#'   set_seed(42)
#'   a <- as.array(c4_cnn()$head$linear$weight)
#'   set_seed(42)
#'   b <- as.array(c4_cnn()$head$linear$weight)
#'   identical(a, b)
#' }
set_seed <- function(seed) {
  call_py(core()$set_seed(as_py_seed(seed, "seed")))
  invisible(seed)
}
