# Deploying a model: export_model() and save_onnx() (equivariance.export in the core),
# thin wrappers through core_call() (arguments converted by R/arg-transformers.R).

#' Export a model as a plain PyTorch network, or as an ONNX file
#'
#' `export_model()` returns a network built only from `torch.nn` layers and torch
#' function calls (a `torch.fx.GraphModule`) that computes what `model` computes in
#' eval mode: it runs where only PyTorch is installed, without this package, and
#' `torch.jit.script()` and `torch.export.export()` accept it. The group
#' convolutions are expanded once, batch-norm running statistics are folded into the
#' convolutions, and the class names (`class_names`) and the input shape
#' (`input_shape`) are kept as attributes (and as the buffers `meta_class_names`
#' and `meta_input_shape`, which `torch.export` keeps too).
#'
#' `save_onnx()` writes the exported network as an ONNX file with torch's
#' recommended exporter (`dynamo = True`): the batch dimension is dynamic, height and
#' width are those of `input_shape`, and the class names and input shape are in the
#' file's metadata (`metadata_props`, as JSON). Before the file is written, ONNX
#' Runtime runs it and its logits are compared with PyTorch's. It needs the Python
#' packages onnx, onnxscript and onnxruntime (the extra `equivariance[onnx]`), e.g.
#' `reticulate::py_install(c("onnx", "onnxscript", "onnxruntime"), envname =
#' "r-equivariance")`.
#'
#' What the exported network no longer does: it checks nothing about its input
#' (shape, type, size), it has no training mode, and it returns logits, classes
#' counted from 0 (column 1 is the first class name): outside R there is no factor;
#' the class names travel as metadata. Models holding a quantile map cannot be
#' exported (their map has no exact form in torch layers or ONNX operators).
#' `model` itself is left unchanged, in the modes it was in.
#'
#' @param model One of the package's models ([simple_cnn()], [eq_cnn()],
#'   [c4_cnn()], [d4_cnn()], [escnn_cnn()], [escnn_c4_cnn()]) or a torch module of
#'   your own made of `torch.nn` layers and the package's group layers. For
#'   `save_onnx()`, also a network `export_model()` returned.
#' @param input_shape `NULL` or the shape of one input without the batch
#'   dimension, e.g. `c(1, 28, 28)`. `NULL` takes the shape the model was trained on
#'   ([fit_model()] records it). With a shape, the pooling windows of the group
#'   networks are fixed to those used at that size (ONNX needs fixed windows);
#'   `save_onnx()` needs one.
#' @param path The `.onnx` file to write (replaced if it exists), in an existing
#'   folder.
#' @param opset_version `NULL` (the exporter's default) or the ONNX opset, a whole
#'   number.
#' @param check `TRUE` to compare the file's output in ONNX Runtime with PyTorch's
#'   (to 1e-4) before writing it, or `FALSE`.
#' @return `export_model()`: the exported network, in eval mode. `save_onnx()`:
#'   the path written (`~` expanded), invisibly.
#' @seealso [save_model()] to save a model for this package; [predict()] works on
#'   the exported network too.
#' @export
#' @examples
#' if (equivariance_available()) {
#'   model <- c4_cnn(widths = c(2, 2, 2))
#'   net <- export_model(model, input_shape = c(1, 28, 28))
#'   x <- array(runif(2 * 28 * 28), c(2, 28, 28))
#'   print(all.equal(predict(net, x, type = "logits"), predict(model, x, type = "logits"),
#'                   tolerance = 1e-5))
#'   # a file that loads without this package: torch.export's
#'   torch <- reticulate::import("torch")
#'   path <- tempfile(fileext = ".pt2")
#'   x1 <- reticulate::tuple(torch$rand(2L, 1L, 28L, 28L))
#'   torch$export$save(torch$export$export(net, x1), path)
#'   unlink(path)
#' }
#' if (equivariance_available() && reticulate::py_module_available("onnxscript") &&
#'     reticulate::py_module_available("onnxruntime")) {
#'   path <- tempfile(fileext = ".onnx")
#'   save_onnx(model, path, input_shape = c(1, 28, 28))
#'   unlink(path)
#' }
export_model <- function(model, input_shape = NULL) {
  core_call(core()$export_model)
}

#' @rdname export_model
#' @export
save_onnx <- function(model, path, input_shape = NULL, opset_version = NULL, check = TRUE) {
  invisible(core_call(core()$save_onnx))
}
