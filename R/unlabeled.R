#' `unlabeled_data` of fit_model() -> Python images (labels, when given, are dropped).
#'
#' An R array or torch tensor of images goes as a tensor of the model's `dtype`; a
#' list of images and labels (as `data` takes) gives its images, its labels ignored
#' unchecked; a data set from fashion_mnist() or any Python object goes as it is (the
#' core takes the images and checks them: shape, count, finite values).
#' @noRd
as_unlabeled_data <- function(x, dtype = "float32") {
  if (is.null(x)) {
    return(NULL)
  }
  if (inherits(x, "equivariance_dataset")) {
    return(x$py)
  }
  if (is_py(x)) {
    return(x)
  }
  if (is.list(x)) {
    keys <- fit_data_keys(x, "unlabeled_data")
    where <- if (is.numeric(keys)) "unlabeled_data[[1]]" else paste0("unlabeled_data$", keys[1])
    images <- x[[keys[1]]]
    return(if (is_py(images)) images else as_py_tensor(images, where, dtype = dtype))
  }
  as_py_tensor(x, "unlabeled_data", dtype = dtype)
}
