# export_model() / save_onnx(): plain torch networks and ONNX files from R.

test_that("export_model() gives a plain torch network with the model's logits and names", {
  skip_if_no_python()
  torch()$manual_seed(1L)
  model <- c4_cnn(widths = c(2, 2, 2))
  model$train()
  invisible(model(as_tensor(array(runif(4 * 784) * 3, c(4, 1, 28, 28))))) # batch-norm statistics
  model$class_names <- paste0("c", 1:10)
  net <- export_model(model, input_shape = c(1, 28, 28))
  expect_true(model$training) # the model keeps its mode
  owners <- vapply(reticulate::iterate(net$modules()), function(m) {
    reticulate::py_get_attr(reticulate::py_get_attr(m, "__class__"), "__module__")$`__str__`()
  }, character(1))
  expect_true(all(startsWith(owners, "torch.")))
  expect_false(net$training)
  expect_identical(unlist(net$class_names), paste0("c", 1:10))
  expect_identical(as.integer(unlist(net$input_shape)), c(1L, 28L, 28L))
  x <- array(runif(3 * 784), c(3, 28, 28))
  model$eval()
  expect_equal(predict(net, x, type = "logits"), predict(model, x, type = "logits"),
               tolerance = 1e-5)
  expect_identical(predict(net, x), predict(model, x))
})

test_that("export_model() names the layer it does not know, in R words", {
  skip_if_no_python()
  nn <- torch()$nn
  mine <- nn$Sequential(nn$Conv2d(1L, 4L, 3L), group_map(2, 4), nn$Flatten())
  expect_error(export_model(mine), "quantile map `1` \\(GroupMap\\), which cannot be exported",
               class = "equivariance_error")
  expect_error(export_model("c4"), "`model` must be a torch nn.Module",
               class = "equivariance_error")
  expect_error(export_model(simple_cnn(), input_shape = c(1, 0, 28)), "input_shape",
               class = "equivariance_error")
})

test_that("save_onnx() writes a file ONNX Runtime runs like PyTorch, with the class names", {
  skip_if_no_python()
  torch()$manual_seed(2L)
  model <- d4_cnn(widths = c(1, 1, 2))
  model$class_names <- LETTERS[1:10]
  path <- tempfile(fileext = ".onnx")
  on.exit(unlink(path))
  expect_identical(save_onnx(model, path, input_shape = c(1, 28, 28)), path)
  expect_invisible(save_onnx(model, path, input_shape = c(1, 28, 28), check = FALSE))
  onnx <- reticulate::import("onnx")
  props <- reticulate::import_builtins()$list(onnx$load(path)$metadata_props)
  meta <- stats::setNames(lapply(props, function(p) p$value),
                          vapply(props, function(p) p$key, character(1)))
  expect_identical(unlist(reticulate::import("json")$loads(meta$class_names)), LETTERS[1:10])
  ort <- reticulate::import("onnxruntime")
  session <- ort$InferenceSession(path, providers = list("CPUExecutionProvider"))
  np <- reticulate::import("numpy", convert = FALSE)
  for (n in c(1, 17)) {
    x <- array(runif(n * 784), c(n, 28, 28))
    batch <- np$asarray(array(x, c(n, 1, 28, 28)), dtype = "float32")
    got <- session$run(NULL, reticulate::dict(images = batch))[[1]]
    expect_equal(unname(got), unname(predict(model, x, type = "logits")), tolerance = 1e-4)
  }
})

test_that("save_onnx() checks the path first and needs an input shape", {
  skip_if_no_python()
  missing <- file.path(tempfile(), "model.onnx")
  expect_error(save_onnx(c4_cnn(), missing, input_shape = c(1, 28, 28)),
               "folder that does not exist", class = "equivariance_error")
  expect_error(save_onnx(c4_cnn(), tempfile(fileext = ".onnx")), "`input_shape` is needed",
               class = "equivariance_error")
  expect_error(save_onnx(c4_cnn(), tempfile(), check = NA), "`check` must be TRUE or FALSE",
               class = "equivariance_error")
})
