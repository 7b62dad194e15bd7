#' Layers, output shapes and parameter counts of a model
#'
#' Lists the layers of a torch model (the modules that hold parameters or have no
#' submodules, under their names such as `features.0`) with the number of
#' parameters each holds, the output shape of each for one input, and the total.
#' Output shapes come from one forward pass of a zero image in evaluation mode,
#' when the input shape is given or known: [fit_model()] records the shape of the
#' images it trained on.
#'
#' @param object A torch `nn.Module`, such as [c4_cnn()].
#' @param input_shape `NULL` or the shape of one input without the batch
#'   dimension, e.g. `c(1, 28, 28)`.
#' @param ... Not used; an error if given.
#' @return An object of class `equivariance_model_summary`: a list with `layers`
#'   (a data.frame with `layer`, `type`, `output_shape` (text, `NA` when unknown)
#'   and `parameters`), `total` and `trainable` parameter counts, `model` (the
#'   class name) and `input_shape`. It prints as a table.
#' @seealso [fit_model()]
#' @method summary torch.nn.modules.module.Module
#' @export
#' @examples
#' if (equivariance_available()) {
#'   summary(c4_cnn(), input_shape = c(1, 28, 28))
#'   s <- summary(simple_cnn())
#'   s$total
#' }
summary.torch.nn.modules.module.Module <- function(object, input_shape = NULL, ...) {
  check_no_dots(...)
  shape <- if (is.null(input_shape)) NULL else as_py_shape(input_shape, "input_shape")
  s <- call_py(core()$summary(object, shape))$as_dict()
  layers <- s$layers
  shapes <- vapply(layers$output_shape, function(d) {
    if (is.null(d)) NA_character_ else paste0("(", paste(unlist(d), collapse = ", "), ")")
  }, character(1))
  structure(
    list(
      layers = data.frame(
        layer = as.character(unlist(layers$name)), type = as.character(unlist(layers$kind)),
        output_shape = shapes, parameters = as.numeric(unlist(layers$params)),
        stringsAsFactors = FALSE
      ),
      total = as.numeric(s$total), trainable = as.numeric(s$trainable), model = s$model,
      input_shape = if (is.null(s$input_shape)) NULL else as.integer(unlist(s$input_shape))
    ),
    class = "equivariance_model_summary"
  )
}

#' @export
print.equivariance_model_summary <- function(x, ...) {
  input <- if (is.null(x$input_shape)) "" else paste0(", input (", paste(x$input_shape, collapse = ", "), ")")
  cat("<", x$model, input, ">\n", sep = "")
  layers <- x$layers
  layers$output_shape[is.na(layers$output_shape)] <- "?"
  layers$parameters <- format(layers$parameters, big.mark = ",")
  print(layers, row.names = FALSE, right = FALSE)
  cat("total parameters: ", format(x$total, big.mark = ","), " (",
    format(x$trainable, big.mark = ","), " trainable)\n", sep = "")
  invisible(x)
}
