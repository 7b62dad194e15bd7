# Package state: the imported Python core, cached after the first call.
.equivariance <- new.env(parent = emptyenv())

.onLoad <- function(libname, pkgname) {
  # Only *points* reticulate at the package's environment; nothing is imported
  # here, so library(equivariance) never fails for lack of Python.
  select_python()
  register_tensor_ops()
  invisible()
}
