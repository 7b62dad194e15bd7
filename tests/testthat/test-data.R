test_that("fashion_mnist() reads the shipped subset", {
  skip_if_no_python()
  test <- fashion_mnist("test", limit = 50, root = "subset")
  expect_s3_class(test, "equivariance_dataset")
  expect_length(test$labels, 50)
  expect_true(all(test$labels %in% 1:10)) # R counts classes from 1
  expect_equal(test$classes[1], "T-shirt/top")
  expect_equal(test$source, "subset")
  img <- as.array(test)
  expect_equal(dim(img), c(50, 1, 28, 28))
  expect_true(min(img) >= 0 && max(img) <= 1)
  small <- test[c(2, 4)]
  expect_equal(small$labels, test$labels[c(2, 4)])
  expect_output(print(test), "test split")
  full <- fashion_mnist("test", root = "subset")
  expect_equal(tabulate(full$labels, 10), rep(100, 10))
})

test_that("fashion_mnist() rejects bad arguments, naming them", {
  skip_if_no_python()
  expect_error(fashion_mnist("valid"), "`split`")
  expect_error(fashion_mnist("test", limit = 0), "`limit`")
  expect_error(fashion_mnist("test", limit = 2.5), "`limit`")
  expect_error(fashion_mnist("test", root = 3), "`root`")
  expect_error(fashion_mnist("test", root = tempfile()), "root")
  test <- fashion_mnist("test", limit = 5, root = "subset")
  expect_error(test[10], "`i`")
})

test_that("a folder without the files is a clear error", {
  skip_if_no_python()
  dir <- tempfile()
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE))
  expect_error(fashion_mnist("train", root = dir), "train-images-idx3-ubyte")
})

test_that("fashion_mnist()$y is the labels as a factor of class names", {
  skip_if_no_python()
  test <- fashion_mnist("test", limit = 20, root = "subset")
  expect_s3_class(test$y, "factor")
  expect_equal(levels(test$y), test$classes)
  expect_equal(as.integer(test$y), test$labels)
  expect_equal(test[3:4]$y, test$y[3:4])
})
