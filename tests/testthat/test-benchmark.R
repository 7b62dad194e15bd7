small_benchmark <- function(...) {
  rotation_benchmark(
    epochs = 1, batch_size = 64, root = "subset", limit = 128, test_limit = 100,
    verbose = FALSE, ...
  )
}

test_that("rotation_benchmark() returns the table, a CSV file and a PNG plot", {
  skip_if_no_python()
  csv <- tempfile(fileext = ".csv")
  png <- tempfile(fileext = ".png")
  result <- small_benchmark(models = c("SimpleCNN", "C4CNN"), csv = csv, png = png)
  expect_s3_class(result, "rotation_benchmark")
  expect_s3_class(result, "data.frame")
  expect_equal(result$model, c("SimpleCNN", "C4CNN"))
  expect_named(result, c(
    "model", "parameters", "seconds_per_epoch", "accuracy_0", "accuracy_90",
    "accuracy_180", "accuracy_270", "invariance_error", "agreement"
  ))
  expect_equal(result$agreement[2], 1) # C4CNN: the same class at every angle
  expect_type(result$parameters, "integer")
  expect_true(all(result$parameters <= 14000))
  expect_true(all(result$seconds_per_epoch > 0))
  acc <- as.matrix(result[grep("^accuracy_", names(result))])
  expect_true(all(acc >= 0 & acc <= 1))
  # the C4 network is exactly invariant, the plain CNN is not
  expect_lt(result$invariance_error[2], 1e-4)
  expect_equal(length(unique(acc[2, ])), 1)
  expect_gt(result$invariance_error[1], 1e-3)
  written <- utils::read.csv(csv)
  expect_equal(written$model, result$model)
  expect_equal(written$accuracy_90, result$accuracy_90, tolerance = 1e-12)
  expect_gt(file.size(png), 1000)
  expect_identical(readBin(png, "raw", 4), as.raw(c(0x89, 0x50, 0x4e, 0x47)))
  expect_s3_class(attr(result, "histories")$C4CNN, "equivariance_history")
  expect_true(inherits(attr(result, "models")$C4CNN, "torch.nn.modules.module.Module"))
  expect_equal(attr(result, "settings")$train_size, 128)
  expect_output(print(result), "acc90%")
  expect_output(print(result), "inv.error")
})

test_that("rotation_benchmark() takes the user's own models and the regularized CNN", {
  skip_if_no_python()
  th <- torch()
  linear <- function() th$nn$Sequential(th$nn$Flatten(), th$nn$Linear(784L, 10L))
  given <- linear()
  result <- small_benchmark(
    models = list(linear = linear, given = given, regularized = "SimpleCNN+reg"),
    rotations = c(0, 2), reg_n = 16
  )
  expect_equal(result$model, c("linear", "given", "regularized"))
  expect_true(all(c("accuracy_0", "accuracy_180") %in% names(result)))
  expect_equal(result$parameters[1], 7850L)
  expect_true(all(attr(result, "histories")$regularized$steps$reg > 0))
  expect_true(all(attr(result, "histories")$linear$steps$reg == 0))
})

test_that("rotation_benchmark() names the argument it cannot use", {
  skip_if_no_python()
  expect_error(small_benchmark(models = "Nope"), "models")
  expect_error(small_benchmark(models = character()), "models")
  expect_error(small_benchmark(models = list(3)), "models")
  expect_error(small_benchmark(models = list(a = 3)), "models\\$a")
  expect_error(small_benchmark(models = "SimpleCNN", epochs = 0), "epochs")
  expect_error(small_benchmark(models = "SimpleCNN", epochs = 1.5), "epochs")
  expect_error(small_benchmark(models = "SimpleCNN", lr = -1), "lr")
  expect_error(small_benchmark(models = "SimpleCNN", seed = -2), "seed")
  expect_error(small_benchmark(models = "SimpleCNN", rotations = 90), "rotations")
  expect_error(small_benchmark(models = "SimpleCNN", reg_lambda = -1), "reg_lambda")
  expect_error(small_benchmark(models = "SimpleCNN", csv = 3), "csv")
  expect_error(small_benchmark(models = "SimpleCNN", png = NA_character_), "png")
  expect_error(small_benchmark(models = "SimpleCNN", png = "/no/such/folder/plot.png"), "png")
  expect_error(small_benchmark(models = "SimpleCNN", csv = "/no/such/folder/table.csv"), "csv")
})

test_that("the \"SimpleCNN+aug\" row trains the plain network on turned images", {
  skip_if_no_python()
  expect_true("SimpleCNN+aug" %in% eval(formals(rotation_benchmark)$models))
  result <- small_benchmark(models = c("SimpleCNN", "SimpleCNN+aug"))
  expect_equal(result$model, c("SimpleCNN", "SimpleCNN+aug"))
  expect_equal(result$parameters[1], result$parameters[2])
  histories <- attr(result, "histories")
  expect_true(all(histories[["SimpleCNN+aug"]]$steps$reg == 0))
  expect_false(isTRUE(all.equal(histories[["SimpleCNN+aug"]]$steps$loss, histories$SimpleCNN$steps$loss)))
  expect_error(
    rotation_benchmark("SimpleCNN", root = "subset", limit = 8, test_limit = 0, verbose = FALSE),
    "`test_limit`"
  )
})

test_that("rotation_benchmark() runs on the device asked for", {
  skip_if_no_python()
  res <- rotation_benchmark(list(m = function() simple_cnn(widths = c(2, 2, 2))),
    epochs = 1, batch_size = 32, limit = 32, test_limit = 16, root = "subset",
    verbose = FALSE, device = "cpu")
  expect_equal(nrow(res), 1)
  if (!torch()$cuda$is_available()) {
    expect_error(rotation_benchmark("SimpleCNN", root = "subset", limit = 8, verbose = FALSE,
      device = "cuda"), "`device` is \"cuda\" but CUDA is not available.*\"auto\"",
      class = "equivariance_value_error")
  }
})

test_that("rotation_benchmark(test = \"d4\") tests the 8 rotations and mirrors", {
  skip_if_no_python()
  png <- tempfile(fileext = ".png")
  result <- small_benchmark(models = c("SimpleCNN", "D4CNN"), test = "d4", png = png)
  labels <- c("0", "90", "180", "270", "flip_0", "flip_90", "flip_180", "flip_270")
  expect_named(result, c(
    "model", "parameters", "seconds_per_epoch", paste0("accuracy_", labels), "invariance_error",
    "agreement"
  ))
  expect_equal(result$agreement[2], 1) # D4CNN: the same class for all 8 elements
  expect_lte(result$parameters[2], 14000)
  acc <- as.matrix(result[grep("^accuracy_", names(result))])
  # D4CNN is exactly invariant: the same accuracy on all 8 test sets
  expect_equal(length(unique(acc[2, ])), 1)
  expect_lt(result$invariance_error[2], 1e-4)
  expect_gt(result$invariance_error[1], 1e-3)
  expect_output(print(result), "flip90%")
  expect_output(print(result), "acc270%")
  expect_gt(file.size(png), 1000)
  expect_error(small_benchmark(models = "D4CNN", test = "o2"), "`test`",
    class = "equivariance_value_error"
  )
})
