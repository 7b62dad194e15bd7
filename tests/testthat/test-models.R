# D4 layers from R. The equivariance errors come from the core's per-element check
# (check_equivariance(group = "D4") is wired to the same function).
d4_errors <- function(module, x, ...) {
  unlist(core()$check_equivariance_group(module, as_tensor(x), group = "D4", ...))
}
d4_names <- c(
  "rot0", "rot90", "rot180", "rot270",
  "flip_rot0", "flip_rot90", "flip_rot180", "flip_rot270"
)

test_that("D4 layers have the expected shapes and transform as regular D4 fields", {
  skip_if_no_python()
  x_img <- array(rnorm(2 * 9 * 9), c(2, 1, 9, 9))
  x_reg <- array(rnorm(2 * 16 * 8 * 8), c(2, 16, 8, 8))
  lift <- d4_lifting_conv2d(1, 2, kernel_size = 3)
  expect_equal(dim(as_r_array(lift(as_tensor(x_img)))), c(2, 16, 7, 7))
  errors <- d4_errors(lift, x_img)
  expect_named(errors, d4_names)
  expect_lt(max(errors), 1e-5)
  expect_gt(max(d4_errors(lift, x_img, output = "rotate")), 1e-2) # a wrong action shows
  conv <- d4_conv2d(2, 3, kernel_size = 3, padding = 1)
  expect_equal(dim(as_r_array(conv(as_tensor(x_reg)))), c(2, 24, 8, 8))
  expect_lt(max(d4_errors(conv, x_reg)), 1e-5)
  for (train in c(TRUE, FALSE)) {
    bn <- d4_batch_norm2d(2, momentum = 0.3)
    bn$train(train)
    expect_lt(max(d4_errors(bn, x_reg)), 1e-5)
  }
  expect_equal(dim(as_r_array(d4_group_pool("mean")(as_tensor(x_reg)))), c(2, 2, 8, 8))
  expect_lt(max(d4_errors(d4_group_pool(), x_reg)), 1e-6)
  expect_equal(dim(as_r_array(d4_max_pool2d()(as_tensor(x_img)))), c(2, 1, 5, 5))
  expect_equal(max(d4_errors(d4_max_pool2d(), x_reg)), 0)
})

test_that("d4_cnn is invariant to rotations and mirrors, and exports", {
  skip_if_no_python()
  model <- d4_cnn(widths = c(2, 2, 3))
  x <- array(runif(2 * 11 * 11), c(2, 1, 11, 11))
  for (train in c(TRUE, FALSE)) {
    model$train(train)
    expect_lt(max(d4_errors(model, x)), 1e-5)
  }
  model$eval()
  logits <- as_r_array(model(as_tensor(x)))
  mirrored <- as_r_array(model(as_tensor(x[, , , 11:1, drop = FALSE])))
  expect_equal(dim(logits), c(2, 10))
  expect_equal(mirrored, logits, tolerance = 1e-5)
  expect_lt(max(check_equivariance(model, x)$error), 1e-5) # the C4 check agrees

  count <- function(m) sum(vapply(reticulate::iterate(m$parameters()), function(p) p$numel(), numeric(1)))
  expect_equal(count(d4_cnn()), 13606)
  layer <- d4_conv2d(1, 2, 3)
  y <- as_tensor(array(rnorm(8 * 6 * 6), c(1, 8, 6, 6)))
  expect_equal(as_r_array(layer$export()(y)), as_r_array(layer(y)), tolerance = 1e-5)
})

test_that("D4 wrappers give classed errors naming the argument", {
  skip_if_no_python()
  expect_error(d4_conv2d(0, 3, 3), "`in_fields`", class = "equivariance_value_error")
  expect_error(d4_lifting_conv2d(1, 2, 2.5), "`kernel_size`", class = "equivariance_value_error")
  expect_error(d4_lifting_conv2d(1, 2, 3, bias = "no"), "`bias`", class = "equivariance_error")
  expect_error(d4_batch_norm2d(2, momentum = 5), "`momentum`", class = "equivariance_value_error")
  expect_error(d4_group_pool("median"), "`mode`", class = "equivariance_value_error")
  expect_error(d4_cnn(kernel_size = 4), "`kernel_size`.*odd", class = "equivariance_value_error")
  expect_error(d4_cnn(widths = c(4, 4)), "`widths`", class = "equivariance_value_error")
  expect_error(
    d4_conv2d(1, 1, 3)(as_tensor(array(0, c(1, 12, 5, 5)))),
    "8 channels"
  )
  expect_error(
    core()$check_equivariance_group(d4_cnn(), as_tensor(array(0, c(1, 1, 9, 9))), group = "C8"),
    "`group`"
  )
})
