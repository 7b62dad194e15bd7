#' Fashion-MNIST images and labels
#'
#' Reads a split of Fashion-MNIST (28 x 28 grey-level images of 10 kinds of
#' clothing) from its IDX files into the Python core. The images stay in Python as
#' one torch tensor of shape `(N, 1, 28, 28)` with values in `[0, 1]`, ready for
#' [fit_model()] and [evaluate_rotations()]; the labels come back as an R vector.
#'
#' The files are looked for in `root`, else in the folder named by the environment
#' variable `EQUIVARIANCE_FASHION_MNIST`, else in `/usr/share/datasets/fashion-mnist`
#' (Debian's `dataset-fashion-mnist` package). When none has them, a small
#' class-balanced subset shipped with the package is used (2,000 training and 1,000
#' test images), with a message saying so; `root = "subset"` asks for it explicitly.
#'
#' @param split `"train"` (60,000 images) or `"test"` (10,000 images).
#' @param limit `NULL` or a positive whole number: keep only the first `limit`
#'   images.
#' @param root `NULL` (look in the usual places), a folder holding the four IDX
#'   files (`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
#'   `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`, gzipped or not), or
#'   `"subset"` for the subset shipped with the package.
#' @return An object of class `equivariance_dataset`, a list with
#'   * `images`: the torch tensor of images, `(N, 1, 28, 28)`, float32 in `[0, 1]`;
#'   * `labels`: an integer vector of classes `1` to `10` (R counts from 1; the
#'     Python core's tensor, `py$labels`, counts from 0);
#'   * `y`: the same labels as a factor whose levels are the class names, ready for
#'     `fit_model(model, list(x, y))`;
#'   * `classes`: the ten class names (label `k` is `classes[k]`);
#'   * `split`, `source` (`"full"` or `"subset"`), `root` (the folder read);
#'   * `py`: the Python `FashionMNIST` data set.
#'
#'   `as.array()` gives the images as an R array of dimension `c(N, 1, 28, 28)`;
#'   `x[i]` keeps the images `i`.
#' @seealso [fit_model()], [evaluate_rotations()]
#' @export
#' @examples
#' if (equivariance_available()) {
#'   test <- fashion_mnist("test", limit = 100, root = "subset")
#'   test
#'   table(test$classes[test$labels])
#'   img <- as.array(test[1])
#'   image(t(img[1, 1, 28:1, ]), col = grey.colors(256, 1, 0), axes = FALSE)
#' }
fashion_mnist <- function(split = "train", limit = NULL, root = NULL) {
  split <- as_py_string(split, "split")
  limit <- if (is.null(limit)) NULL else as_py_int(limit, "limit")
  if (!is.null(root)) root <- path.expand(check_string(root, "root"))
  py <- call_py(core()$load_fashion_mnist(split, root = root, limit = limit, warn = FALSE))
  note_subset(py$source, root)
  new_equivariance_dataset(py)
}

#' Tell the user when the full data set was not found and the shipped subset is
#' used instead, unless they asked for the subset.
#' @noRd
note_subset <- function(source, root) {
  explicit <- identical(root, "subset") ||
    identical(Sys.getenv("EQUIVARIANCE_FASHION_MNIST"), "subset")
  if (!identical(source, "subset") || explicit) {
    return(invisible())
  }
  message(
    "Fashion-MNIST was not found (install the Debian package dataset-fashion-mnist, ",
    "or set EQUIVARIANCE_FASHION_MNIST to a folder holding its IDX files); ",
    "using the subset shipped with equivariance (2,000 training and 1,000 test images)."
  )
}

new_equivariance_dataset <- function(py) {
  labels <- as.integer(as_r_array(py$labels)) + 1L # R counts classes from 1
  classes <- as.character(unlist(py$classes))
  structure(
    list(
      images = py$images,
      labels = labels,
      y = factor(classes[labels], levels = classes),
      classes = classes,
      split = py$split,
      source = py$source,
      root = py$root,
      py = py
    ),
    class = "equivariance_dataset"
  )
}

#' @export
print.equivariance_dataset <- function(x, ...) {
  n <- length(x$labels)
  where <- if (identical(x$source, "subset")) "subset shipped with equivariance" else x$root
  cat("<equivariance_dataset> Fashion-MNIST, ", x$split, " split\n", sep = "")
  cat("  images: ", format(n, big.mark = ","), " x 1 x 28 x 28 (torch tensor, values in [0, 1])\n", sep = "")
  counts <- tabulate(x$labels, nbins = length(x$classes))
  cat("  labels: 1-10, ", paste(counts, collapse = " "), " per class\n", sep = "")
  cat("  source: ", where, "\n", sep = "")
  invisible(x)
}

#' @export
as.array.equivariance_dataset <- function(x, ...) {
  as_r_array(x$images)
}

#' @export
`[.equivariance_dataset` <- function(x, i) {
  n <- length(x$labels)
  if (is.logical(i)) i <- which(rep_len(i, n))
  if (!is.numeric(i) || anyNA(i) || !all(vapply(i, is_whole, logical(1))) ||
    any(i < 1) || any(i > n)) {
    arg_error("i", paste0("indices between 1 and ", n), describe(i))
  }
  index <- reticulate::np_array(as.integer(i) - 1L, dtype = "int64")
  new_equivariance_dataset(call_py(x$py$subset(index)))
}

# -- images and labels given by the user, for fit_model() and evaluate_rotations() --

#' Training or test data -> Python data, and the class names of factor labels.
#'
#' `data` is what fashion_mnist() returns, a Python data set, or a list of images
#' and labels: unnamed `list(x, y)`, or named `x`/`y` or `images`/`labels`. R arrays
#' of images become tensors of `dtype` (the model's); labels are R's: integers from 1
#' or a factor (its levels are the class names), made 0-based for Python. A label
#' tensor is Python's and goes as it is (from 0). The labels of a factor go with its
#' levels as the data's class names, so that the core matches them to the model's
#' classes by name (a factor whose levels are in another order scores right).
#' @return list(py = a Python data set, tuple or dict, class_names = NULL or levels).
#' @noRd
as_fit_data <- function(data, arg = "data", dtype = "float32") {
  if (inherits(data, c("equivariance_dataset", "equivariance_image_data"))) {
    return(list(py = data$py, class_names = NULL))
  }
  if (is_py(data)) {
    return(list(py = data, class_names = NULL))
  }
  keys <- fit_data_keys(data, arg)
  where <- if (is.numeric(keys)) paste0(arg, "[[", keys, "]]") else paste0(arg, "$", keys)
  images <- data[[keys[1]]]
  if (!is_py(images)) images <- as_py_tensor(images, where[1], dtype = dtype)
  labels <- as_fit_labels(data[[keys[2]]], where[2])
  py <- if (is.null(labels$levels)) {
    reticulate::tuple(images, labels$py)
  } else {
    reticulate::py_dict(c("images", "labels", "class_names"),
      list(images, labels$py, as.list(labels$levels)))
  }
  list(py = py, class_names = labels$levels)
}

fit_data_keys <- function(data, arg) {
  expected <- paste(
    "a data set from fashion_mnist() or a list of images and labels:",
    "list(x, y), list(x = , y = ) or list(images = , labels = )"
  )
  if (!is.list(data) || length(data) < 2) arg_error(arg, expected, describe(data))
  nm <- names(data)
  if (is.null(nm) || all(!nzchar(nm))) {
    if (length(data) != 2) arg_error(arg, expected, describe(data))
    return(c(1, 2))
  }
  for (keys in list(c("x", "y"), c("images", "labels"))) {
    if (all(keys %in% nm)) {
      return(keys)
    }
  }
  arg_error(arg, expected, paste0("a list named ", paste0("`", nm, "`", collapse = ", ")))
}

#' Labels as R counts them (from 1, or a factor) -> 0-based int64 tensor.
#' @noRd
as_fit_labels <- function(y, arg) {
  if (is_py(y)) {
    return(list(py = y, levels = NULL))
  }
  expected <- "class numbers from 1 (R counts classes from 1) or a factor"
  if (anyNA(y)) {
    arg_error(arg, paste(expected, "without NA"), paste0("NA at position ", which(is.na(y))[1]))
  }
  if (is.factor(y)) {
    if (anyNA(levels(y))) {
      # factor(x, exclude = NULL) makes NA a level: it would become a class "NA"
      arg_error(arg, "a factor without an NA level (NA is a missing label, not a class)",
                "a factor with the level NA")
    }
    codes <- as.integer(y) - 1L
    levels <- levels(y)
  } else {
    if (!is.numeric(y) || is.logical(y)) arg_error(arg, expected, describe(y), class = "type")
    bad <- which(!vapply(y, is_whole, logical(1)) | y < 1)
    if (length(bad)) {
      hint <- if (all(vapply(y, is_whole, logical(1))) && min(y) == 0) {
        "; labels from 0 (as Python counts)? Add 1, or use a factor"
      } else {
        ""
      }
      arg_error(arg, expected, paste0(format(y[bad[1]]), " at position ", bad[1], hint))
    }
    codes <- y - 1
    levels <- NULL
  }
  list(py = as_py_tensor(codes, arg, dtype = "int64"), levels = levels)
}

#' The floating type of a model's parameters as numpy names it ("float32" or
#' "float64"; "float32" for any other type, which the core then converts).
#' @noRd
model_float_dtype <- function(model) {
  dtype <- core()$devices$model_device_dtype(model)[[2]]
  name <- sub("^torch\\.", "", reticulate::py_str(dtype))
  if (name %in% c("float32", "float64")) name else "float32"
}
