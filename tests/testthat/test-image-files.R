# Image folders and files from R, on small folders written here: with the png
# package when it is installed, else by the core's Pillow.

write_grey <- function(m, path) {
  dir.create(dirname(path), recursive = TRUE, showWarnings = FALSE)
  if (requireNamespace("png", quietly = TRUE)) {
    png::writePNG(m, path)
  } else {
    pil <- reticulate::import("PIL.Image")
    np <- reticulate::import("numpy", convert = FALSE)
    pil$fromarray(np$array(round(m * 255), dtype = "uint8"))$save(path)
  }
  path
}

shapes_folder <- function(n = 6, size = 8) {
  dir <- tempfile("shapes")
  set.seed(1)
  for (cls in c("square", "circle", "ring")) {
    for (i in seq_len(n)) {
      write_grey(matrix(runif(size * size), size), file.path(dir, cls, paste0(i, ".png")))
    }
  }
  dir
}

tiny_net <- function(in_channels = 1L, classes = 3L, size = 8L) {
  th <- torch()
  th$manual_seed(1L)
  nn <- th$nn
  nn$Sequential(
    nn$Conv2d(as.integer(in_channels), 2L, 3L), nn$ReLU(), nn$Flatten(),
    nn$Linear(as.integer(2 * (size - 2)^2), as.integer(classes))
  )
}

test_that("image_folder() reads classes from sub-folders, labels from 1", {
  skip_if_no_python()
  dir <- shapes_folder()
  on.exit(unlink(dir, recursive = TRUE))
  ds <- image_folder(dir)
  expect_s3_class(ds, "equivariance_image_data")
  expect_equal(ds$classes, c("circle", "ring", "square"))
  expect_equal(length(ds), 18)
  expect_equal(ds$labels, rep(1:3, each = 6))
  expect_equal(levels(ds$y), ds$classes)
  expect_equal(ds$channels, 1L)
  expect_equal(ds$size, c(8L, 8L))
  x <- as.array(ds[c(1, 7)])
  expect_equal(dim(x), c(2, 1, 8, 8))
  expect_true(all(x >= 0 & x <= 1))
  expect_output(print(ds), "18 images, 1 x 8 x 8.*circle \\(6\\)")
  expect_equal(dim(as.array(image_folder(dir, size = c(4, 5), channels = 3)[1])), c(1, 3, 4, 5))
})

test_that("fit_model(), predict() and evaluate_rotations() take an image folder", {
  skip_if_no_python()
  dir <- shapes_folder()
  on.exit(unlink(dir, recursive = TRUE))
  ds <- image_folder(dir)
  model <- tiny_net()
  h <- fit_model(model, ds, epochs = 2, batch_size = 5, validation_data = 0.2, seed = 1,
    patience = 1, verbose = FALSE)
  expect_equal(nrow(h$epochs) >= 1, TRUE)
  expect_false(anyNA(h$epochs$val_loss))
  expect_equal(unlist(model$class_names), ds$classes)
  pred <- predict(model, ds)
  expect_s3_class(pred, "factor")
  expect_equal(levels(pred), ds$classes)
  expect_equal(pred, predict(model, as.array(ds)))
  ev <- evaluate_rotations(model, ds, rotations = 0)
  expect_equal(ev$n, 18L)
  expect_equal(ev$accuracy, mean(pred == ds$y))
  # the same folder in memory trains the same weights (to float rounding)
  a <- tiny_net()
  b <- tiny_net()
  fit_model(a, ds, batch_size = 4, seed = 3, verbose = FALSE, num_workers = 1)
  fit_model(b, list(as.array(ds), ds$y), batch_size = 4, seed = 3, verbose = FALSE)
  expect_equal(predict(a, as.array(ds), type = "logits"), predict(b, as.array(ds), type = "logits"),
    tolerance = 1e-5) # to float rounding: a batch read from files has another layout
  # saved and loaded, the model keeps its classes and its input
  path <- tempfile(fileext = ".pt")
  on.exit(unlink(path), add = TRUE)
  save_model(model, path)
  loaded <- load_model(path, model = tiny_net())
  expect_equal(predict(loaded, ds), pred)
  expect_equal(unlist(loaded$input_shape), c(1L, 8L, 8L))
})

test_that("a trained model knows its input: size, channels and range", {
  skip_if_no_python()
  dir <- shapes_folder()
  on.exit(unlink(dir, recursive = TRUE))
  ds <- image_folder(dir)
  model <- tiny_net()
  fit_model(model, ds, verbose = FALSE)
  x <- as.array(ds)
  expect_error(predict(model, array(0.5, c(2, 1, 10, 10))),
    "trained on images of 8x8 .*does not take images of 10x10", class = "equivariance_value_error")
  expect_error(predict(model, array(0.5, c(2, 3, 8, 8))), "\\(N, 1, H, W\\)",
    class = "equivariance_value_error")
  expect_warning(predict(model, x * 255), "far outside the range .*divide them by 255")
  expect_length(predict(model, x[1, 1, , ]), 1) # one grey image c(H, W)
  # one image c(C, H, W) of a model of C channels
  colour <- tiny_net(3L)
  fit_model(colour, image_folder(dir, channels = 3), verbose = FALSE)
  expect_length(predict(colour, x[1, c(1, 1, 1), , ]), 1)
})

test_that("labels from 1 or a factor in every R function, 0-based is a clear error", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 8, root = "subset")
  expect_true(all(train$labels %in% 1:10))
  expect_equal(as.integer(train$y), train$labels)
  model <- simple_cnn()
  opt <- torch()$optim$Adam(model$parameters(), lr = 1e-3)
  expect_named(train_step(model, opt, train$images, train$labels), c("loss", "reg", "total"))
  expect_named(train_step(model, opt, train$images, train$y), c("loss", "reg", "total"))
  expect_error(train_step(model, opt, train$images, train$labels - 1L),
    "`y` must be class numbers from 1 .*got 0 at position .*Add 1",
    class = "equivariance_value_error")
  expect_error(fit_model(model, list(train$images, train$labels - 1L), verbose = FALSE),
    "`data\\[\\[2\\]\\]` must be class numbers from 1 .*Add 1",
    class = "equivariance_value_error")
})

test_that("image_files() takes files with labels, a data frame or a CSV file", {
  skip_if_no_python()
  dir <- tempfile("flat")
  on.exit(unlink(dir, recursive = TRUE))
  files <- vapply(1:4, function(i) write_grey(matrix(i / 5, 6, 6), file.path(dir, paste0(i, ".png"))),
    character(1))
  ds <- image_files(files, factor(c("b", "a", "b", "a"), levels = c("b", "a")))
  expect_equal(ds$classes, c("b", "a"))
  expect_equal(ds$labels, c(1L, 2L, 1L, 2L))
  expect_equal(image_files(files, c(2, 1, 2, 3))$labels, c(2L, 1L, 2L, 3L))
  index <- data.frame(file = basename(files), label = c("dog", "cat", "dog", "cat"))
  by_frame <- image_files(index, root = dir)
  expect_equal(by_frame$classes, c("cat", "dog"))
  expect_equal(as.character(by_frame$y), index$label)
  utils::write.csv(index, file.path(dir, "index.csv"), row.names = FALSE)
  expect_equal(image_files(file.path(dir, "index.csv"))$labels, by_frame$labels)
  expect_error(image_files(files, c(0, 1, 2, 3)), "`labels` must be class numbers from 1",
    class = "equivariance_value_error")
  expect_error(image_files(files, 1:3), "one label per file: 4 files, 3 labels",
    class = "equivariance_value_error")
  expect_error(image_files(data.frame(name = files)), "columns `file` and `label`",
    class = "equivariance_value_error")
})

test_that("bad folders are errors naming the file or the argument", {
  skip_if_no_python()
  dir <- shapes_folder(n = 2)
  on.exit(unlink(dir, recursive = TRUE))
  expect_error(image_folder(file.path(dir, "nowhere")), "folder not found", class = "equivariance_error")
  empty <- file.path(dir, "circle", "empty")
  dir.create(file.path(dir, "ring", "deeper"))
  dir.create(file.path(dir, "zero"))
  expect_error(image_folder(dir), "class folder .*zero holds no images", class = "equivariance_value_error")
  unlink(file.path(dir, "zero"), recursive = TRUE)
  writeLines("notes", file.path(dir, "ring", "notes.txt"))
  expect_error(image_folder(dir), "notes\\.txt: not an image file", class = "equivariance_value_error")
  unlink(file.path(dir, "ring", "notes.txt"))
  writeBin(charToRaw("not a png"), file.path(dir, "ring", "broken.png"))
  expect_error(image_folder(dir), "broken\\.png: not a readable PNG", class = "equivariance_value_error")
  unlink(file.path(dir, "ring", "broken.png"))
  write_grey(matrix(0.5, 10, 10), file.path(dir, "ring", "big.png"))
  expect_error(image_folder(dir), "different sizes: .*big\\.png is 10x10.*pass `size`",
    class = "equivariance_value_error")
  expect_equal(image_folder(dir, size = 8)$size, c(8L, 8L))
  expect_error(image_folder(dir, size = c(1, 2, 3)), "`size`", class = "equivariance_value_error")
  # a file spoilt after the listing stops training with its name
  ds <- image_folder(dir, size = 8)
  bad <- ds$files[2]
  writeBin(readBin(bad, "raw", 60), bad)
  expect_error(fit_model(tiny_net(), ds, verbose = FALSE), "image file .*cannot be decoded",
    class = "equivariance_value_error")
})

test_that("rotation_benchmark() takes data = list(train, test)", {
  skip_if_no_python()
  dir <- shapes_folder(n = 4, size = 28)
  on.exit(unlink(dir, recursive = TRUE))
  ds <- image_folder(dir)
  res <- rotation_benchmark("SimpleCNN", epochs = 1, batch_size = 6, data = list(ds, ds),
    verbose = FALSE)
  expect_equal(attr(res, "settings")$train_size, 12L)
  expect_error(rotation_benchmark("SimpleCNN", data = ds, verbose = FALSE), "`data` must be NULL",
    class = "equivariance_value_error")
})

test_that("mixed channels, an empty folder and flat files are errors naming them", {
  skip_if_no_python()
  dir <- shapes_folder(n = 2)
  on.exit(unlink(dir, recursive = TRUE))
  colour <- file.path(dir, "ring", "colour.png")
  if (requireNamespace("png", quietly = TRUE)) {
    png::writePNG(array(0.5, c(8, 8, 3)), colour)
  } else {
    pil <- reticulate::import("PIL.Image")
    np <- reticulate::import("numpy", convert = FALSE)
    pil$fromarray(np$full(c(8L, 8L, 3L), 128L, dtype = "uint8"))$save(colour)
  }
  expect_error(image_folder(dir), "different channel counts: .*colour\\.png has 3.*`channels = 1`",
    class = "equivariance_value_error")
  expect_equal(image_folder(dir, channels = 3)$channels, 3L)
  empty <- tempfile("empty")
  dir.create(empty)
  on.exit(unlink(empty, recursive = TRUE), add = TRUE)
  expect_error(image_folder(empty), "has no class sub-folders", class = "equivariance_value_error")
  write_grey(matrix(0.5, 8, 8), file.path(empty, "flat.png"))
  expect_error(image_folder(empty), "image files directly.*image_files", class = "equivariance_value_error")
})

test_that("any Python data set: pairs checked, labels out of range found at their batch", {
  skip_if_no_python()
  reticulate::py_run_string("
import torch
from torch.utils.data import Dataset, IterableDataset, DataLoader
class OnlyImages(Dataset):
    def __len__(self): return 6
    def __getitem__(self, i): return torch.zeros(1, 8, 8)
class Stream(IterableDataset):
    def __iter__(self):
        for i in range(12):
            yield torch.rand(1, 8, 8), (5 if i == 9 else i % 3)
loader = DataLoader(Stream(), batch_size=4)
")
  main <- reticulate::import_main(convert = FALSE)
  expect_error(fit_model(tiny_net(), main$OnlyImages(), verbose = FALSE),
    "`data` must return \\(image, label\\) pairs, got Tensor", class = "equivariance_value_error")
  expect_error(fit_model(tiny_net(), main$Stream(), batch_size = 4, verbose = FALSE),
    "`data`: the batch at epoch 1, step 3 holds label 5, but the model returns 3 logits",
    class = "equivariance_value_error")
  expect_error(fit_model(tiny_net(), main$loader, verbose = FALSE),
    "step 3 holds label 5", class = "equivariance_value_error")
})
