test_that("whole numbers become Python ints; the range is the core's rule", {
  expect_identical(as_py_int(16, "n"), 16L)
  expect_identical(as_py_int(3L, "kernel_size"), 3L)
  expect_identical(as_py_int(-2, "k"), -2L)
  expect_identical(as_py_int(0, "n"), 0L) # the core says whether 0 is allowed
  expect_identical(as_py_int(2.5, "n"), 2.5) # and rejects a number that is not whole
  expect_error(as_py_int(c(1, 2), "n"), "`n`")
  expect_error(as_py_int(NA, "n"), "`n`")
  expect_error(as_py_int(TRUE, "n"), "`n` must be a whole number, got TRUE")
  expect_error(as_py_int("3", "n"), "`n`")
  expect_error(as_py_int(Inf, "n"), "`n` must be a whole number, got Inf")
  expect_error(as_py_int(-Inf, "k"), "`k` must be a whole number, got -Inf")
  expect_error(as_py_int(NaN, "n"), "got NaN")
  expect_identical(as_py_number(-1, "lr"), -1) # the core's message names `lr`
  expect_error(as_py_number(NA, "lr"), "`lr` must be a number, got NA")
})

# The value Python receives, read back in Python (reticulate would wrap it on the
# way back to R as it did on the way in).
py_repr <- function(x) {
  reticulate::py_to_r(reticulate::import_builtins(convert = FALSE)$repr(x))
}

test_that("whole numbers beyond R's integer range reach Python exactly", {
  skip_if_no_python()
  expect_identical(py_repr(as_py_int(3e9 + 1, "n")), "3000000001")
  expect_identical(py_repr(as_py_int(2^31, "dx")), "2147483648")
  expect_identical(py_repr(as_py_int(-2^31, "dx")), "-2147483648")
  expect_identical(py_repr(as_py_int(-3e9, "k")), "-3000000000")
  expect_identical(py_repr(as_py_int(2^53, "n")), "9007199254740992")
  expect_identical(py_repr(as_py_shape(c(1, 3e9), "shape")), "(1, 3000000000)")
  expect_identical(py_repr(as_py_seed(2^40)), "1099511627776")
  expect_identical(py_repr(as_py_quarter_turns(c(0, 3e9 + 1))), "[0, 3000000001]")
  expect_identical(py_repr(as_py_dist(3e9)), "3000000000")
  expect_identical(py_repr(as_py_element(3e9, "element")), "3000000000")
  # no coercion warning, as as.integer() gave
  expect_no_warning(as_py_int(3e9, "n"))
})

test_that("whole numbers beyond 2^53 are errors showing the value", {
  expect_error(as_py_int(2^53 + 2, "n"), "`n` must be a whole number of at most 2\\^53 .*9.007199e\\+15")
  expect_error(as_py_int(1e20, "k"), "got 1e\\+20")
  expect_error(as_py_shape(c(1, 1e20), "shape"), "`shape`")
  expect_error(as_py_seed(1e300), "`seed`")
  expect_error(as_py_quarter_turns(c(1, -1e17)), "`rotations`")
})

test_that("messages show whole numbers with all their digits", {
  expect_identical(describe(16), "16")
  expect_identical(describe(3e9 + 1), "3000000001")
  expect_identical(describe(0.1), "0.1")
  skip_if_no_python()
  expect_error(c4_conv2d(-3e9 - 1, 2, 3), "`in_fields` must be a positive whole number, got -3000000001$")
  expect_error(c4_conv2d(3e9 + 0.5, 2, 3), "`in_fields` must be a positive whole number")
})

test_that("transforms get the user's whole numbers, not wrapped ones", {
  skip_if_no_python()
  # 3e9 + 1 is 1 modulo 4: as.integer() made it NA, which Python saw as a multiple of 4
  expect_match(py_repr(transform_rot90(3e9 + 1)), "k=1")
  expect_match(py_repr(transform_translate(2^31)), "dx=2147483648")
  expect_match(py_repr(transform_translate(-2^31 - 1, 3e9)), "dx=-2147483649, dy=3000000000")
  expect_error(transform_rot90(1.5), "`k` must be a whole number, got 1.5")
  expect_error(transform_rot90(2^60), "`k`.*2\\^53")
})

test_that("distances are converted in R and checked by the core", {
  expect_identical(as_py_dist(2), 2L)
  expect_identical(as_py_dist(1.5), 1.5)
  expect_identical(as_py_dist(Inf), "inf")
  expect_identical(as_py_dist("kl_logits"), "kl_logits")
  expect_error(as_py_dist(NA_real_), "`dist`", class = "equivariance_value_error")
  expect_error(as_py_dist(c(1, 2)), "`dist`", class = "equivariance_type_error")
  skip_if_no_python()
  model <- torch_module()$nn$Linear(2L, 2L)
  make <- function(dist) {
    equivariance_regularizer(model, 2, list(list(transform_identity(), 0, 1)), dist = dist)
  }
  for (bad in list(0.5, -Inf, NaN)) {
    expect_error(make(bad), "`dist`", class = "equivariance_value_error")
  }
  # the core's message lists every name it accepts, the divergences included
  expect_error(make("l2"), "`dist` must be .*\"kl_logits\".*\"js_logits\".*got \"l2\"",
    class = "equivariance_value_error")
})

test_that("bounds are converted in R and checked by the core", {
  expect_error(as_py_bounds(list(a = 0, b = 1), "bounds"), "`bounds`")
  expect_error(as_py_bounds("x", "bounds"), "`bounds`", class = "equivariance_type_error")
  expect_error(as_py_bounds(list(lower = c(0, 0), upper = c(1, 1, 1)), "bounds"), "same shape")
  skip_if_no_python()
  model <- torch_module()$nn$Linear(2L, 2L)
  make <- function(bounds) {
    equivariance_regularizer(model, 2, list(list(transform_identity(), 0, 1)), bounds = bounds)
  }
  expect_error(make(c(1, 0)), "`bounds`.*lower bound is above", class = "equivariance_value_error")
  for (bad in list(c(0, Inf), c(-Inf, 1), list(lower = 0, upper = NaN), c(NA, 1))) {
    expect_error(make(bad), "`bounds` must be finite numbers", class = "equivariance_value_error")
  }
  expect_error(make(array(0, c(2, 3))), "`bounds` must have a last dimension of 2",
    class = "equivariance_value_error")
})

test_that("Inf and NaN reach the core as numbers, which it rejects by name; NA is refused in R", {
  expect_error(as_py_number(NA_real_, "eps"), "`eps` must be a number, got NA")
  expect_error(as_py_seed(Inf), "`seed`")
  skip_if_no_python()
  expect_error(c4_batch_norm2d(2, eps = Inf), "^`eps` must be a non-negative finite number, got Inf$")
  expect_error(d4_batch_norm2d(2, eps = NaN), "^`eps` must be a non-negative finite number, got NaN$")
  expect_error(group_map(2, 4, eps = -Inf), "^`eps` must be a non-negative finite number, got -Inf$")
})

test_that("shapes become tuples of integers; their range is the core's rule", {
  skip_if_no_python()
  s <- as_py_shape(c(1, 28, 28), "shape")
  expect_identical(unlist(reticulate::py_to_r(s)), c(1L, 28L, 28L))
  expect_error(as_py_shape(c(1, Inf), "shape"), "`shape`")
  expect_error(as_py_shape(c(1, NA), "shape"), "`shape`")
  expect_error(as_py_shape("a", "shape"), "`shape`")
  expect_error(layer_map(c(1, -1)), "^`normalized_shape` must be a non-empty vector of positive whole numbers")
  expect_error(layer_map(numeric(0)), "^`normalized_shape` must be a non-empty vector")
})

test_that("R arrays become tensors with their index order preserved", {
  skip_if_no_python()
  x <- array(seq_len(24), c(2, 3, 4))
  t <- as_py_tensor(x, "x")
  expect_identical(as_r_shape(t), c(2L, 3L, 4L))
  expect_equal(t[1L]$`__getitem__`(2L)$`__getitem__`(3L)$item(), x[2, 3, 4])
  expect_equal(as_r_array(t), x)
  expect_error(as_py_tensor("a", "x"), "`x`", class = "equivariance_type_error")
  expect_error(as_py_tensor(c(1, NA), "x"), "`x`")
})

test_that("arrays with Inf, -Inf or NaN are rejected as arrays with NA are", {
  skip_if_no_python()
  msg <- "`x` must be an array of finite numbers (without NA, NaN or Inf), got"
  expect_error(as_py_tensor(c(1, NA), "x"), paste(msg, "NA at position 2"), fixed = TRUE)
  expect_error(as_py_tensor(array(c(0, 1, Inf), c(1, 3)), "x"), paste(msg, "Inf at position 3"), fixed = TRUE)
  expect_error(as_py_tensor(c(-Inf, 0), "x"), paste(msg, "-Inf at position 1"), fixed = TRUE)
  expect_error(as_py_tensor(c(0, NaN), "x"), paste(msg, "NaN at position 2"), fixed = TRUE)
  expect_error(as_py_tensor(c(1L, NA), "x"), paste(msg, "NA at position 2"), fixed = TRUE)
  expect_error(as_py_tensor(c(TRUE, NA), "x"), "NA at position 2")
  expect_error(as_tensor(c(0, Inf)), "`x`", class = "equivariance_value_error")
  # finite values that float32 cannot hold would become Inf in the tensor
  expect_error(as_py_tensor(c(1, 1e39), "x"), "`x` .*float32.*1e\\+39 at position 2")
  expect_equal(as_r_array(as_py_tensor(c(1e300, -1e300), "x", dtype = "float64")), c(1e300, -1e300))
  expect_equal(as_r_array(as_py_tensor(numeric(0), "x")), numeric(0))
})
