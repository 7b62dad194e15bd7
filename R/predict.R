# Prediction with any torch classifier, as an S3 method of stats::predict(). The
# Python core (equivariance.predict) runs the batches in eval mode without
# gradients; here R arrays go in and factors and matrices come out.

#' Predict classes or class probabilities for new images
#'
#' Runs a classifier on new images in evaluation mode and without gradients,
#' `batch_size` images at a time, and leaves the model as it was: every module's
#' training mode, its device and its batch-norm statistics. Works for the package's
#' models and for any torch module that returns logits of dimension
#' `c(N, num_classes)`.
#'
#' The class names are those the model carries: a model trained by [fit_model()] on
#' factor labels keeps their levels, and [load_model()] restores them.
#'
#' @param object A torch `nn.Module` returning logits, such as [c4_cnn()] after
#'   [fit_model()], or a model from [load_model()].
#' @param x Images: an R array of dimension `c(N, C, H, W)`, or `c(N, H, W)` for
#'   one channel (one image `c(C, H, W)` when the model takes `C > 1` channels, or
#'   one grey image `c(H, W)`), a
#'   torch tensor, a data set from [fashion_mnist()] (its images) or from
#'   [image_folder()] / [image_files()] (read batch by batch). Converted to the
#'   model's floating type. Images of another channel count or size than the model
#'   was trained on are an error (a warning, once, for a model that takes any
#'   size); values far outside the training range (0-255 for a model trained on
#'   `[0, 1]`) a warning.
#' @param type `"class"` (the most probable class), `"prob"` (the softmax of the
#'   logits) or `"logits"`.
#' @param batch_size Images per forward pass.
#' @param device `NULL` (where the model is), `"auto"` (CUDA when available, else
#'   the CPU), `"cpu"`, `"cuda"`, `"cuda:1"` or `"mps"`. The model is moved there
#'   for the call and back afterwards.
#' @param ... Not used; an error if given (it catches misspelt arguments).
#' @return For `type = "class"`, a factor whose levels are the model's class names
#'   when it has them, otherwise integers from 1 (class `k` is logit `k`). For
#'   `"prob"` and `"logits"`, a numeric matrix with one row per image and one
#'   column per class, named after the classes when the model has class names.
#' @seealso [fit_model()], [save_model()]
#' @method predict torch.nn.modules.module.Module
#' @export
#' @examples
#' if (equivariance_available()) {
#'   test <- fashion_mnist("test", limit = 4, root = "subset")
#'   model <- c4_cnn(widths = c(2, 2, 2)) # untrained: see fit_model()
#'   predict(model, test$images) # integers from 1: the model has no class names
#'   model$class_names <- test$classes # what fit_model() keeps from factor labels
#'   print(predict(model, test)) # the same as predict(model, test$images)
#'   x <- array(runif(2 * 28 * 28), c(2, 28, 28)) # an R array (N, H, W)
#'   round(predict(model, x, type = "prob"), 3)
#' }
predict.torch.nn.modules.module.Module <- function(object, x,
                                                   type = c("class", "prob", "logits"),
                                                   batch_size = 256, device = NULL, ...) {
  check_no_dots(...)
  # the default vector means its first choice; any other value is checked by Python
  if (identical(type, c("class", "prob", "logits"))) type <- "class"
  out <- call_py(core()$predict(
    object, as_py_images(x, "x"),
    type = type,
    batch_size = as_py_int(batch_size, "batch_size"),
    device = device
  ))
  names <- call_py(core()$prediction$model_class_names(object))
  if (identical(type, "class")) {
    return(as_r_classes(out, names))
  }
  out <- as_r_array(out)
  if (!is.null(names) && length(dim(out)) == 2) colnames(out) <- unlist(names)
  out
}

#' Class indices (a 0-based tensor) -> a factor of class names, or integers from 1.
#' @noRd
as_r_classes <- function(classes, names) {
  idx <- as.integer(as_r_array(classes)) + 1L
  if (is.null(names)) {
    return(idx)
  }
  names <- unlist(names)
  factor(names[idx], levels = names)
}

#' Images for predict(): a tensor or numpy array as is, an R array as a numpy array
#' of its own type (the core checks the values and converts them to the model's).
#' @noRd
as_py_images <- function(x, arg) {
  if (inherits(x, "equivariance_dataset")) {
    return(x$images)
  }
  if (inherits(x, "equivariance_image_data")) {
    return(x$py) # read batch by batch
  }
  if (is_py(x)) {
    return(x)
  }
  if (!is.numeric(x) && !is.logical(x)) {
    arg_error(arg, "images as a numeric array or a torch tensor", describe(x), class = "type")
  }
  # an integer NA would reach numpy as -2147483648: as a double it is NaN, which the
  # core reports
  if (is.integer(x)) storage.mode(x) <- "double"
  reticulate::np_array(x)
}

#' Stop if `...` holds anything: the methods of stats generics must accept `...`,
#' but an argument that lands there is a typo (`newdata =`, `btach_size =`): the
#' error names the method's closest argument (R/core-call.R).
#' @noRd
check_no_dots <- function(...) {
  n <- ...length()
  if (n == 0) {
    return(invisible())
  }
  dots <- names(list(...))
  if (is.null(dots) || all(!nzchar(dots))) {
    abort_equivariance(paste0("`...` must be empty, got ", n, " unnamed argument(s)."), "value")
  }
  method <- sys.function(sys.parent())
  own <- setdiff(names(formals(method)), "...")
  # the generic the user called (`predict`), not the method's full name
  fun <- get0(".Generic", envir = parent.frame(), inherits = FALSE,
              ifnotfound = wrapper_name(sys.call(sys.parent())))
  abort_unknown_argument(dots[nzchar(dots)][1], own, fun)
}
