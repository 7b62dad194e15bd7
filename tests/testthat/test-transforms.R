# Transforms from R: continuous rotations and flags.

test_that("transform_rotate(90) equals transform_rot90(1) on the interior", {
  skip_if_no_python()
  th <- torch()
  for (dtype in list(th$float32, th$float64)) {
    x <- th$rand(c(2L, 1L, 7L, 7L), dtype = dtype)
    y <- as_r_array(transform_rotate(90)(x))
    expected <- as_r_array(transform_rot90(1)(x))
    inner <- 2:6
    expect_lt(max(abs(y[, , inner, inner] - expected[, , inner, inner])), 1e-5)
  }
  # an R array's index order is kept: rotating twice by 90 is rot90(2)
  x <- th$rand(c(1L, 1L, 5L, 5L))
  twice <- transform_rotate(90)(transform_rotate(90)(x))
  expect_lt(max(abs(as_r_array(twice) - as_r_array(transform_rot90(2)(x)))), 1e-5)
})

test_that("transform_rotate turns counterclockwise and fills with zero", {
  skip_if_no_python()
  th <- torch()
  ones <- th$ones(c(1L, 1L, 8L, 8L))
  r <- as_r_array(transform_rotate(45)(ones))
  expect_equal(r[1, 1, 1, 1], 0)
  expect_equal(r[1, 1, 4, 4], 1, tolerance = 1e-6)
  top <- array(0, c(1, 1, 5, 5))
  top[1, 1, 1, 3] <- 1 # top middle
  y <- as_r_array(transform_rotate(90)(top_t <- th$tensor(top, dtype = th$float32)))
  expect_equal(y[1, 1, 3, 1], 1, tolerance = 1e-6) # left middle, as rot90
  expect_gt(as_r_array(transform_rotate(45)(top_t))[1, 1, 2, 2], 0.3) # towards the upper left
  expect_output(print(transform_rotate(30)), "rotate\\(degrees=30\\)")
})

test_that("transform_random_rotate draws angles within the bound, seeded", {
  skip_if_no_python()
  th <- torch()
  x <- th$rand(c(4L, 1L, 6L, 6L))
  th$manual_seed(5L)
  a <- as_r_array(transform_random_rotate(20)(x))
  th$manual_seed(5L)
  b <- as_r_array(transform_random_rotate(20)(x))
  expect_identical(a, b)
  expect_identical(as_r_array(transform_random_rotate(0)(x)), as_r_array(x))
  expect_output(print(transform_random_rotate(15, per_sample = FALSE)), "per_sample=False")
})

test_that("the regularizer rotates input and output by the same random angles", {
  skip_if_no_python()
  th <- torch()
  # pointwise and linear: exactly equivariant to any rotation with zero fill
  model <- th$nn$Conv2d(1L, 2L, 1L, bias = FALSE)
  reg <- equivariance_regularizer(model, c(1, 8, 8),
    list(list(transform_random_rotate(40), 0, 1)), n = 6)
  for (i in 1:3) expect_equal(reg()$item(), 0, tolerance = 1e-6)
  other <- equivariance_regularizer(model, c(1, 8, 8),
    list(list(transform_rotate(10), transform_rotate(20), 0, 1)), n = 6)
  expect_gt(other()$item(), 1e-3)
})

test_that("bad angles and flags are errors naming the argument", {
  skip_if_no_python()
  expect_error(transform_random_rotate(-1), "`max_degrees`.*-1")
  expect_error(transform_random_rotate(NaN), "`max_degrees`")
  expect_error(transform_random_rotate(Inf), "`max_degrees`")
  expect_error(transform_random_rotate("30"), "`max_degrees`")
  expect_error(transform_random_rotate(TRUE), "`max_degrees`")
  expect_error(transform_random_rotate(NA), "`max_degrees`")
  expect_error(transform_random_rotate(c(10, 20)), "`max_degrees`")
  expect_error(transform_rotate(NaN), "`degrees`")
  expect_error(transform_rotate(Inf), "`degrees`")
  expect_error(transform_rotate(-Inf), "`degrees`")
  expect_error(transform_rotate("90"), "`degrees`")
  expect_error(transform_rotate(NA_real_), "`degrees`")
  expect_error(transform_random_rotate(10, per_sample = "FALSE"), "`per_sample`")
  expect_error(transform_random_rot90("False"), "`per_sample`")
  expect_error(transform_random_rot90(NA), "`per_sample`")
  expect_s3_class(transform_random_rot90(FALSE), "python.builtin.object")
})
