# R tests that need the Python core call skip_if_no_python() first. Outside CI a
# missing Python skips them; with EQUIVARIANCE_REQUIRE_PYTHON=true (set by the
# Makefile, so in `make test` and CI) a missing Python is a test failure instead.
skip_if_no_python <- function() {
  if (equivariance_available()) {
    return(invisible(TRUE))
  }
  if (identical(Sys.getenv("EQUIVARIANCE_REQUIRE_PYTHON"), "true")) {
    stop("The Python core is required here (EQUIVARIANCE_REQUIRE_PYTHON=true) but cannot be loaded.")
  }
  testthat::skip("Python core not available; run install_equivariance()")
}

torch <- function() reticulate::import("torch")

# A small CNN classifier for 1x28x28 inputs (built in Python so it is deterministic).
small_cnn <- function(seed = 1) {
  th <- torch()
  th$manual_seed(as.integer(seed))
  nn <- th$nn
  nn$Sequential(
    nn$Conv2d(1L, 4L, 3L, padding = 1L), nn$ReLU(),
    nn$AdaptiveAvgPool2d(1L), nn$Flatten(), nn$Linear(4L, 10L)
  )
}

# escnn is part of the required environment too: in `make test` its absence fails.
skip_if_no_escnn <- function() {
  skip_if_no_python()
  if (reticulate::py_module_available("escnn")) {
    return(invisible(TRUE))
  }
  if (identical(Sys.getenv("EQUIVARIANCE_REQUIRE_PYTHON"), "true")) {
    stop("escnn is required here (EQUIVARIANCE_REQUIRE_PYTHON=true) but cannot be imported.")
  }
  testthat::skip("escnn not installed; run install_equivariance()")
}

# A tiny CNN for 1x28x28 inputs: one convolution, a 4x4 max pool and a linear layer.
tiny_model <- function(seed = 1) {
  th <- torch()
  th$manual_seed(as.integer(seed))
  nn <- th$nn
  nn$Sequential(
    nn$Conv2d(1L, 4L, 3L, padding = 1L), nn$ReLU(), nn$MaxPool2d(4L),
    nn$Flatten(), nn$Linear(196L, 10L)
  )
}
