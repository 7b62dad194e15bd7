#' Images in a folder, one sub-folder per class
#'
#' A data set of the images under `path`, one sub-folder per class (the class names
#' are the sub-folders' names, sorted). It is lazy: only the file names are held, and
#' each image is decoded (by Pillow, in the Python core) when a batch needs it, so a
#' folder larger than memory trains. PNG, JPEG, BMP and TIFF files, 8 or 16 bits per
#' sample, grey or RGB; pixel values in `[0, 1]`. Pass it to [fit_model()] (with
#' `validation_data = 0.2` to hold out a fifth of the files), [evaluate_rotations()],
#' [predict()] and [rotation_benchmark()].
#'
#' The files' headers are read at once: a file that is not an image, a mix of sizes
#' without `size` or a mix of grey and colour images without `channels` is an error
#' naming the file. A file that cannot be decoded stops training with an error naming
#' it.
#'
#' @param path The folder.
#' @param size `NULL` (all images must have one size), a whole number (square) or
#'   `c(height, width)`: every image is resized to it.
#' @param channels `NULL` (the files' own), `1` (grey) or `3` (RGB): converts.
#' @param classes `NULL` (every sub-folder), or the names of the sub-folders to use,
#'   in the order of their labels.
#' @return An object of class `equivariance_image_data`: a list with `files`,
#'   `labels` (class numbers from 1), `y` (a factor whose levels are the class names),
#'   `classes`, `channels`, `size` (`c(height, width)`) and `py` (the Python data
#'   set). `length()` counts the images; `x[i]` keeps the images `i`; `as.array()`
#'   decodes them all into an array `c(N, C, H, W)`.
#' @seealso [image_files()], [fit_model()], `vignette("your-own-data")`
#' @export
#' @examples
#' if (equivariance_available() && requireNamespace("png", quietly = TRUE)) {
#'   dir <- tempfile()
#'   for (cls in c("circle", "square")) dir.create(file.path(dir, cls), recursive = TRUE)
#'   img <- matrix(runif(16 * 16), 16)
#'   for (i in 1:3) {
#'     png::writePNG(img, file.path(dir, "circle", paste0(i, ".png")))
#'     png::writePNG(t(img), file.path(dir, "square", paste0(i, ".png")))
#'   }
#'   shapes <- image_folder(dir)
#'   shapes
#'   table(shapes$y)
#'   unlink(dir, recursive = TRUE)
#' }
image_folder <- function(path, size = NULL, channels = NULL, classes = NULL) {
  path <- path.expand(check_string(path, "path"))
  py <- call_py(core()$image_folder(
    path,
    size = as_py_size(size), channels = as_py_channels(channels),
    classes = if (is.null(classes)) NULL else as.list(as.character(classes))
  ))
  new_image_data(py)
}

#' Image files listed with their labels
#'
#' The second form of [image_folder()], for images not laid out by class: a vector of
#' files and their labels, a data frame with the columns `file` and `label`, or a
#' CSV file with those columns. Lazy in the same way.
#'
#' @param files File paths (relative to `root` when given), a data frame with the
#'   columns `file` and `label`, or the path of a CSV file with a header and those
#'   columns (its relative paths start at its folder).
#' @param labels One label per file: a factor (its levels are the class names),
#'   class numbers from 1, or class names (sorted into the classes). `NULL` with a
#'   data frame or a CSV file.
#' @param root `NULL` or the folder the file names are relative to.
#' @inheritParams image_folder
#' @return As [image_folder()].
#' @seealso [image_folder()]
#' @export
#' @examples
#' if (equivariance_available() && requireNamespace("png", quietly = TRUE)) {
#'   dir <- tempfile()
#'   dir.create(dir)
#'   for (i in 1:4) png::writePNG(matrix(runif(64), 8), file.path(dir, paste0(i, ".png")))
#'   index <- data.frame(file = paste0(1:4, ".png"), label = c("a", "b", "a", "b"))
#'   ds <- image_files(index, root = dir)
#'   ds$y
#'   unlink(dir, recursive = TRUE)
#' }
image_files <- function(files, labels = NULL, root = NULL, size = NULL, channels = NULL) {
  classes <- NULL
  if (is.data.frame(files)) {
    if (!all(c("file", "label") %in% names(files))) {
      arg_error("files", "a data frame with the columns `file` and `label`",
        paste0("columns ", paste0("`", names(files), "`", collapse = ", ")))
    }
    if (!is.null(labels)) arg_error("labels", "NULL when `files` is a data frame", describe(labels))
    labels <- files$label
    files <- files$file
  }
  if (!is.character(files) || !length(files) || anyNA(files)) {
    arg_error("files", "file paths, a data frame or a CSV file's path", describe(files), "type")
  }
  if (!is.null(labels)) {
    if (is.factor(labels)) classes <- as.list(levels(labels))
    labels <- if (is.character(labels)) as.list(labels) else as_fit_labels(labels, "labels")$py
  } else if (length(files) > 1) {
    arg_error("labels", "one label per file (or `files` a data frame or CSV file)", "NULL")
  }
  files <- if (length(files) == 1 && is.null(labels)) path.expand(files) else as.list(files)
  py <- call_py(core()$image_files(
    files, labels,
    root = if (is.null(root)) NULL else path.expand(check_string(root, "root")),
    size = as_py_size(size), channels = as_py_channels(channels), classes = classes
  ))
  new_image_data(py)
}

as_py_size <- function(size) {
  if (is.null(size)) {
    return(NULL)
  }
  if (!is.numeric(size) || !length(size) %in% 1:2) {
    arg_error("size", "NULL, a whole number or c(height, width)", describe(size))
  }
  if (length(size) == 1) as_py_int(size, "size") else reticulate::tuple(lapply(size, as_py_int, "size"))
}

as_py_channels <- function(channels) {
  if (is.null(channels)) NULL else as_py_int(channels, "channels")
}

new_image_data <- function(py) {
  labels <- as.integer(unlist(py$targets)) + 1L # R counts classes from 1
  classes <- if (is.null(py$classes)) NULL else as.character(unlist(py$classes))
  structure(
    list(
      files = as.character(unlist(py$files)),
      labels = labels,
      y = if (is.null(classes)) NULL else factor(classes[labels], levels = classes),
      classes = classes,
      channels = as.integer(py$channels),
      size = as.integer(unlist(py$size)),
      py = py
    ),
    class = "equivariance_image_data"
  )
}

#' @export
print.equivariance_image_data <- function(x, ...) {
  cat("<equivariance_image_data> ", format(length(x$files), big.mark = ","), " images, ",
    x$channels, " x ", x$size[1], " x ", x$size[2], " (read from files when needed)\n",
    sep = ""
  )
  if (!is.null(x$classes)) {
    counts <- tabulate(x$labels, nbins = length(x$classes))
    cat("  classes: ", paste0(x$classes, " (", counts, ")", collapse = ", "), "\n", sep = "")
  }
  if (!is.null(x$py$root)) cat("  root: ", x$py$root, "\n", sep = "")
  invisible(x)
}

#' @export
length.equivariance_image_data <- function(x) length(x$files)

#' @export
`[.equivariance_image_data` <- function(x, i) {
  n <- length(x$files)
  if (is.logical(i)) i <- which(rep_len(i, n))
  if (!is.numeric(i) || anyNA(i) || !all(vapply(i, is_whole, logical(1))) ||
    any(i < 1) || any(i > n)) {
    arg_error("i", paste0("indices between 1 and ", n), describe(i))
  }
  new_image_data(call_py(x$py$subset(as.list(as.integer(i) - 1L))))
}

#' @export
as.array.equivariance_image_data <- function(x, ...) {
  as_r_array(call_py(x$py$load())[[1]])
}
