# Agreement across rotations, fit_model(unlabeled_data = ), rotation_benchmark(labels = )

test_that("evaluate_rotations() reports agreement: 1 for an invariant model", {
  skip_if_no_python()
  test <- fashion_mnist("test", limit = 50, root = "subset")
  out <- evaluate_rotations(c4_cnn(widths = c(2, 2, 2)), test)
  expect_true("agreement" %in% names(out))
  expect_equal(out$agreement, rep(1, 4))
  plain <- evaluate_rotations(small_cnn(), test)
  expect_length(unique(plain$agreement), 1)
  expect_true(plain$agreement[1] >= 0 && plain$agreement[1] <= 1)
})

test_that("evaluate_rotations()'s agreement is the exact share on a constructed case", {
  skip_if_no_python()
  # class = the quarter holding the brightest pixel: it moves with every turn
  quarter <- reticulate::py_run_string(paste(
    "import torch",
    "class Quarter(torch.nn.Module):",
    "    def forward(self, x):",
    "        import torch",
    "        h = x.shape[-1] // 2",
    "        q = torch.stack([x[..., :h, :h].flatten(1).amax(1), x[..., :h, h:].flatten(1).amax(1),",
    "                         x[..., h:, h:].flatten(1).amax(1), x[..., h:, :h].flatten(1).amax(1)], 1)",
    "        return torch.cat([q, torch.zeros(x.shape[0], 6)], 1)",
    "model = Quarter()",
    sep = "\n"
  ), local = TRUE)$model
  x <- array(0, dim = c(8, 1, 4, 4))
  x[1:6, 1, 1, 1] <- 1
  x[7:8, , , ] <- 0.5 # constant images keep class 1 at every angle
  out <- evaluate_rotations(quarter, list(x, rep(1, 8)))
  expect_equal(out$agreement, rep(2 / 8, 4))
  expect_equal(out$accuracy, c(1, 2 / 8, 2 / 8, 2 / 8))
})

test_that("fit_model() evaluates the regularizer on unlabeled_data", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 64, root = "subset")
  x <- as.array(train)[, 1, , ]
  unlabeled <- as.array(fashion_mnist("train", limit = 128, root = "subset"))[65:128, 1, , ]
  model <- small_cnn()
  reg <- equivariance_regularizer(model, c(1, 28, 28), list(list(transform_rot90(1), 0, 1)), n = 8)
  h <- fit_model(model, list(x, train$y), batch_size = 32, regularizer = reg, seed = 1,
    unlabeled_data = unlabeled, verbose = FALSE)
  expect_true(all(h$steps$reg > 0))
  # a list of images and labels: the labels are ignored (even labels from 0)
  h2 <- fit_model(small_cnn(), list(x, train$y), batch_size = 32, seed = 1,
    regularizer = equivariance_regularizer(small_cnn(), c(1, 28, 28),
      list(list(transform_rot90(1), 0, 1)), n = 8),
    unlabeled_data = list(unlabeled, rep(0, 64)), verbose = FALSE)
  expect_equal(nrow(h2$steps), 2)
})

test_that("bad unlabeled_data and reg_points are errors naming them", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 32, root = "subset")
  model <- small_cnn()
  reg <- equivariance_regularizer(model, c(1, 28, 28), list(list(transform_rot90(1), 0, 1)), n = 4)
  fit <- function(...) fit_model(model, train, regularizer = reg, verbose = FALSE, ...)
  bad <- array(runif(3 * 28 * 28), dim = c(3, 28, 28))
  bad[1, 1, 1] <- NaN
  expect_error(fit(unlabeled_data = bad), "unlabeled_data", class = "equivariance_error")
  bad[1, 1, 1] <- Inf
  expect_error(fit(unlabeled_data = bad), "unlabeled_data", class = "equivariance_error")
  expect_error(fit(unlabeled_data = array(0, dim = c(3, 20, 20))), "unlabeled_data.*shape")
  expect_error(fit(unlabeled_data = array(0, dim = c(0, 28, 28))), "unlabeled_data")
  expect_error(fit(unlabeled_data = "images"), "unlabeled_data")
  expect_error(fit(reg_points = "unlabeled"), "reg_points.*unlabeled_data")
})

test_that("rotation_benchmark() has an agreement column and a label budget", {
  skip_if_no_python()
  result <- rotation_benchmark(
    models = c("SimpleCNN+aug", "SimpleCNN+reg", "C4CNN"), labels = 20, reg_n = 8,
    epochs = 1, batch_size = 64, root = "subset", limit = 128, test_limit = 100, verbose = FALSE
  )
  expect_true("agreement" %in% names(result))
  expect_equal(result$agreement[3], 1)
  expect_true(all(result$agreement >= 0 & result$agreement <= 1))
  expect_equal(attr(result, "settings")$labels, 20)
  # an epoch keeps the length of a full-data epoch: 128 images at batch 64
  expect_equal(nrow(attr(result, "histories")[["SimpleCNN+aug"]]$steps), 2)
  expect_output(print(result), "agree%")
  for (bad in list(5, 129, 20.5, "20", TRUE)) {
    expect_error(rotation_benchmark(models = "SimpleCNN", labels = bad, root = "subset",
      limit = 128, test_limit = 100, verbose = FALSE), "labels")
  }
})
