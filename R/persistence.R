# Saving and loading models (equivariance.save_model / load_model in the core).

#' Save a model to a file and load it again
#'
#' `save_model()` writes one file holding what it takes to use a model in another
#' session: the weights, the buffers (batch-norm and quantile-map running
#' statistics), every module's training mode, the class names, and for the
#' package's own models ([simple_cnn()], [eq_cnn()], [c4_cnn()], the C4 layers, the
#' quantile maps, [escnn_c4_cnn()]) the architecture: the class and the arguments
#' it was built with. `load_model(path)` rebuilds such a model; a loaded model
#' predicts exactly what the saved one did.
#'
#' Any other torch module is saved with its weights and buffers only: build the
#' same module again and pass it as `model`, and `load_model()` loads the weights
#' into it.
#'
#' The file is written to a temporary file in the same folder, then renamed, so an
#' interrupted save never leaves a damaged file at `path`. Loading reads the file
#' with `torch.load(weights_only = TRUE)`: it holds only numbers, strings and
#' tensors, and no code in it is ever run.
#'
#' @param model For `save_model()`, the torch module to save. For `load_model()`,
#'   `NULL` to rebuild one of the package's models, or a module of the same
#'   architecture to load the weights into.
#' @param path The file to write (replaced if it exists) or read.
#' @param map_location Where to put the loaded model: `NULL` (the CPU for a rebuilt
#'   model; a given `model` stays where it is), `"auto"`, `"cpu"`, `"cuda"`,
#'   `"cuda:1"` or `"mps"`.
#' @return `save_model()` returns `path` invisibly. `load_model()` returns the
#'   model, its modules in the training modes they had when saved (a given `model`
#'   keeps its own), with the saved class names.
#' @seealso [predict.torch.nn.modules.module.Module()], [fit_model()]
#' @export
#' @examples
#' if (equivariance_available()) {
#'   model <- c4_cnn(widths = c(2, 2, 2))
#'   path <- tempfile(fileext = ".pt")
#'   save_model(model, path)
#'   same <- load_model(path)
#'   x <- array(runif(2 * 28 * 28), c(2, 28, 28))
#'   print(identical(predict(same, x, type = "prob"), predict(model, x, type = "prob")))
#'   # a module of your own: its weights are saved, and loaded into a new one
#'   torch <- reticulate::import("torch")
#'   mine <- torch$nn$Sequential(torch$nn$Flatten(), torch$nn$Linear(784L, 10L))
#'   save_model(mine, path)
#'   again <- load_model(path, model = torch$nn$Sequential(torch$nn$Flatten(),
#'                                                          torch$nn$Linear(784L, 10L)))
#'   print(identical(predict(again, x), predict(mine, x)))
#'   unlink(path)
#' }
save_model <- function(model, path) {
  model <- as_py_module(model, "model")
  path <- path.expand(check_string(path, "path"))
  call_py(core()$save_model(model, path))
  invisible(path)
}

#' @rdname save_model
#' @export
load_model <- function(path, model = NULL, map_location = NULL) {
  path <- path.expand(check_string(path, "path"))
  if (!is.null(model)) model <- as_py_module(model, "model")
  call_py(core()$load_model(path, model = model, map_location = map_location))
}

#' `path` (a string, `~` expanded) if a file can be written there, else the core's
#' error naming `arg`: checked before any work, for every output path.
#' @noRd
output_path <- function(path, arg) {
  path <- path.expand(check_string(path, arg))
  call_py(core()$`_files`$output_path(path, arg))
}
