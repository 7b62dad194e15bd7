# workers = 2 starts 2 local processes with torchrun (gloo on the loopback interface).

flat_parameters <- function(model) {
  unlist(lapply(reticulate::iterate(model$parameters()), function(p) {
    as.numeric(p$detach()$flatten()$tolist())
  }))
}

test_that("fit_model(workers = 2) trains like one process and returns the same objects", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 24, root = "subset")
  one <- small_cnn(1)
  h1 <- fit_model(one, train, epochs = 1, batch_size = 8, lr = 1e-2, seed = 0, verbose = FALSE)
  two <- small_cnn(1)
  h2 <- fit_model(two, train,
    epochs = 1, batch_size = 8, lr = 1e-2, seed = 0, verbose = FALSE,
    workers = 2, timeout = 120
  )
  expect_s3_class(h2, "equivariance_history")
  expect_equal(nrow(h2$steps), 3)
  expect_equal(h2$steps$loss, h1$steps$loss, tolerance = 1e-5)
  # the model given was trained in place, to the weights of one process
  expect_equal(flat_parameters(two), flat_parameters(one), tolerance = 1e-5)
  expect_false(isTRUE(all.equal(flat_parameters(two), flat_parameters(small_cnn(1)))))
})

test_that("a failing rank stops every rank and becomes an R error naming it", {
  skip_if_no_python()
  # an augmentation that fails on rank 1 only, in a module the ranks can import
  dir <- tempfile("failing-")
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE), add = TRUE)
  writeLines(c(
    "import os",
    "class FailOnRank:",
    "    def __call__(self, x):",
    "        if os.environ.get('RANK') == '1':",
    "            raise ValueError('bad shard on rank 1')",
    "        return x"
  ), file.path(dir, "failing_augment.py"))
  os <- reticulate::import("os")
  old <- os$environ$get("PYTHONPATH", "")
  os$environ$update(list(PYTHONPATH = paste(c(dir, if (nzchar(old)) old), collapse = ":")))
  on.exit(os$environ$update(list(PYTHONPATH = old)), add = TRUE)
  fail <- reticulate::import_from_path("failing_augment", dir)$FailOnRank()
  train <- fashion_mnist("train", limit = 8, root = "subset")
  expect_error(
    fit_model(small_cnn(1), train,
      batch_size = 8, augment = fail, verbose = FALSE,
      workers = 2, timeout = 60
    ),
    "rank 1 of 2: bad shard on rank 1",
    class = "equivariance_value_error"
  )
  # arguments that cannot reach the ranks, and bad launcher settings, fail at once
  expect_error(
    fit_model(small_cnn(1), train, augment = function(x) x, verbose = FALSE, workers = 2),
    "`augment` cannot be sent to the worker processes",
    class = "equivariance_value_error"
  )
  expect_error(
    fit_model(small_cnn(1), train, batch_size = 8, verbose = FALSE, workers = 0),
    "`workers`",
    class = "equivariance_value_error"
  )
})

test_that("rotation_benchmark(workers = 2) returns the table and writes the CSV here", {
  skip_if_no_python()
  csv <- tempfile(fileext = ".csv")
  on.exit(unlink(csv), add = TRUE)
  res <- rotation_benchmark(
    models = "C4CNN", epochs = 1, batch_size = 16, limit = 32, test_limit = 16,
    root = "subset", verbose = FALSE, csv = csv, workers = 2, timeout = 120
  )
  expect_s3_class(res, "rotation_benchmark")
  expect_equal(res$model, "C4CNN")
  expect_lt(res$invariance_error, 1e-5) # C4CNN with synchronised batch norm
  expect_equal(read.csv(csv)$model, "C4CNN")
  expect_s3_class(attr(res, "histories")$C4CNN, "equivariance_history")
})
