test_that("whole numbers become integers and non-whole values are errors", {
  expect_identical(as_py_int(16, "n"), 16L)
  expect_identical(as_py_int(3L, "kernel_size"), 3L)
  expect_identical(as_py_int(-2, "k", min = -Inf), -2L)
  expect_error(as_py_int(2.5, "n"), "`n` must be a positive whole number")
  expect_error(as_py_int(0, "n"), "`n`")
  expect_error(as_py_int(c(1, 2), "n"), "`n`")
  expect_error(as_py_int(NA, "n"), "`n`")
  expect_error(as_py_int(TRUE, "n"), "`n`")
  expect_error(as_py_int("3", "n"), "`n`")
})

test_that("distances are validated in R", {
  expect_identical(as_py_dist(2), 2L)
  expect_identical(as_py_dist(1.5), 1.5)
  expect_identical(as_py_dist(Inf), "inf")
  expect_identical(as_py_dist("cross_entropy"), "cross_entropy")
  expect_error(as_py_dist(0.5), "`dist`")
  expect_error(as_py_dist(-Inf), "`dist`")
  expect_error(as_py_dist("l2"), "`dist`")
  expect_error(as_py_dist(NA_real_), "`dist`")
})

test_that("bounds are validated in R", {
  expect_error(as_py_bounds(c(1, 0), "bounds"), "lower")
  expect_error(as_py_bounds(list(a = 0, b = 1), "bounds"), "`bounds`")
  expect_error(as_py_bounds("x", "bounds"), "`bounds`")
  expect_error(as_py_bounds(list(lower = c(0, 0), upper = c(1, 1, 1)), "bounds"), "same shape")
})

test_that("shapes become tuples of integers", {
  skip_if_no_python()
  s <- as_py_shape(c(1, 28, 28), "shape")
  expect_identical(unlist(reticulate::py_to_r(s)), c(1L, 28L, 28L))
  expect_error(as_py_shape(c(1, -1), "shape"), "`shape`")
  expect_error(as_py_shape(numeric(0), "shape"), "`shape`")
})

test_that("R arrays become tensors with their index order preserved", {
  skip_if_no_python()
  x <- array(seq_len(24), c(2, 3, 4))
  t <- as_py_tensor(x, "x")
  expect_identical(as_r_shape(t), c(2L, 3L, 4L))
  expect_equal(t[1L]$`__getitem__`(2L)$`__getitem__`(3L)$item(), x[2, 3, 4])
  expect_equal(as_r_array(t), x)
  expect_error(as_py_tensor("a", "x"), "`x`")
  expect_error(as_py_tensor(c(1, NA), "x"), "`x`")
})
