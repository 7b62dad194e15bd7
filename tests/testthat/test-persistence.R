# save_model() / load_model(): round trips, another R session, user modules, bad files.

test_that("a package model comes back with its weights, buffers and class names", {
  skip_if_no_python()
  torch()$manual_seed(1L)
  model <- c4_cnn(widths = c(2, 2, 2))
  model$train()
  invisible(model(as_tensor(array(runif(4 * 81) * 3, c(4, 1, 9, 9))))) # batch-norm statistics
  model$class_names <- paste0("c", 1:10)
  path <- tempfile(fileext = ".pt")
  on.exit(unlink(path))
  expect_identical(save_model(model, path), path)
  loaded <- load_model(path)
  expect_s3_class(loaded, "equivariance.models.group_cnn.C4CNN")
  expect_true(loaded$training)
  x <- array(runif(3 * 81), c(3, 9, 9))
  expect_identical(predict(loaded, x, type = "logits"), predict(model, x, type = "logits"))
  expect_identical(predict(loaded, x), predict(model, x))
  expect_equal(levels(predict(loaded, x)), paste0("c", 1:10))
})

test_that("a model loaded in a new R session predicts exactly the same", {
  skip_if_no_python()
  torch()$manual_seed(2L)
  model <- c4_cnn(widths = c(2, 2, 2))
  model$class_names <- letters[1:10]
  dir <- tempfile()
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE))
  x <- array(runif(3 * 81), c(3, 9, 9))
  save_model(model, file.path(dir, "model.pt"))
  saveRDS(x, file.path(dir, "x.rds"))
  # the child loads the package as this session did: from source (load_all), or
  # installed (R CMD check, where the sources are not next to the tests)
  src <- normalizePath(testthat::test_path("..", ".."))
  lib <- dirname(system.file(package = "equivariance"))
  script <- c(
    "args <- commandArgs(TRUE)",
    "if (file.exists(file.path(args[1], 'R', 'predict.R'))) {",
    "  pkgload::load_all(args[1], quiet = TRUE, export_all = FALSE)",
    "} else library(equivariance, lib.loc = args[2])",
    "m <- load_model(file.path(args[3], 'model.pt'))",
    "x <- readRDS(file.path(args[3], 'x.rds'))",
    "saveRDS(list(p = predict(m, x, type = 'prob'), c = predict(m, x)), file.path(args[3], 'out.rds'))"
  )
  writeLines(script, file.path(dir, "child.R"))
  status <- system2(file.path(R.home("bin"), "Rscript"),
                    shQuote(c(file.path(dir, "child.R"), src, lib, dir)),
                    stdout = FALSE, stderr = file.path(dir, "stderr.txt"))
  if (status != 0) cat(readLines(file.path(dir, "stderr.txt")), sep = "\n")
  expect_equal(status, 0L)
  out <- readRDS(file.path(dir, "out.rds"))
  expect_identical(out$p, predict(model, x, type = "prob"))
  expect_identical(out$c, predict(model, x))
})

test_that("a user's module is saved with its weights and loaded into a new one", {
  skip_if_no_python()
  model <- small_cnn(seed = 1)
  path <- tempfile(fileext = ".pt")
  on.exit(unlink(path))
  save_model(model, path)
  expect_error(load_model(path), "pass it as `model`", class = "equivariance_value_error")
  other <- small_cnn(seed = 2)
  x <- array(runif(2 * 28 * 28), c(2, 28, 28))
  expect_false(identical(predict(other, x, type = "logits"), predict(model, x, type = "logits")))
  loaded <- load_model(path, model = other)
  expect_identical(predict(loaded, x, type = "logits"), predict(model, x, type = "logits"))
  expect_identical(predict(other, x, type = "logits"), predict(model, x, type = "logits"))
  expect_error(load_model(path, model = c4_cnn()), "`model` does not match the weights",
               class = "equivariance_value_error")
})

test_that("bad paths and files are clear errors naming the path", {
  skip_if_no_python()
  missing <- tempfile(fileext = ".pt")
  expect_error(load_model(missing), "does not exist", class = "equivariance_value_error")
  text <- tempfile(fileext = ".txt")
  on.exit(unlink(text))
  writeLines("not a model", text)
  expect_error(load_model(text), "is not a model file saved by save_model",
               class = "equivariance_value_error")
  expect_error(save_model(c4_cnn(), file.path(tempfile(), "m.pt")), "folder that does not exist",
               class = "equivariance_value_error")
  expect_error(save_model(c4_cnn(), NA_character_), "`path` must be a single non-empty string",
               class = "equivariance_value_error")
  expect_error(save_model(list(), tempfile()), "`model` must be a torch nn.Module",
               class = "equivariance_type_error")
  expect_error(load_model(missing, model = "m"), "`model` must be a torch nn.Module",
               class = "equivariance_type_error")
})
