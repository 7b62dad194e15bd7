test_that("check_equivariance() names a bad module and non-finite inputs", {
  skip_if_no_python()
  x <- array(runif(2 * 9 * 9), c(2, 1, 9, 9))
  expect_error(check_equivariance(5, x), "`module` must be a torch nn.Module, an escnn",
    class = "equivariance_type_error"
  )
  expect_error(check_equivariance(c4_lifting_conv2d(1, 2, 3), x, group = "D8"), "`group`",
    class = "equivariance_value_error"
  )
  bad <- x
  bad[2, 1, 3, 3] <- Inf
  expect_error(check_equivariance(c4_lifting_conv2d(1, 2, 3), bad), "`x`")
  # a float64 tensor reaches a float32 module converted, not as a dtype error
  x64 <- torch()$tensor(x, dtype = torch()$float64)
  errors <- check_equivariance(c4_lifting_conv2d(1, 2, 3), x64)
  expect_lt(max(errors$error), 1e-5)
  x64 <- x64$clone()$contiguous()
  x64[0L]$fill_(NaN)
  expect_error(check_equivariance(c4_lifting_conv2d(1, 2, 3), x64), "`x` must hold finite numbers only",
    class = "equivariance_value_error"
  )
})

test_that("feature_maps() restores every layer's mode", {
  skip_if_no_python()
  model <- simple_cnn()
  first <- model$features[0]
  first$eval()
  maps <- feature_maps(model, array(runif(28 * 28), c(1, 1, 28, 28)), depth = 2)
  expect_length(dim(maps), 4)
  expect_true(model$training)
  expect_false(first$training)
  expect_true(model$features[1]$training)
})

test_that("checks and feature maps follow a double() model's type (and device)", {
  skip_if_no_python()
  torch()$manual_seed(0L)
  model <- c4_cnn(widths = c(2, 2, 2))$double()
  x <- array(runif(2 * 28 * 28), c(2, 1, 28, 28))
  errors <- check_equivariance(model, x)
  expect_lt(max(errors$error), 1e-12) # float64 all the way: float32 would give ~1e-7
  maps <- feature_maps(model, x, depth = 2)
  expect_equal(dim(maps), c(2, 8, 28, 28))
  # the R array reached the first layer in float64, unrounded
  first <- feature_maps(model, x, depth = 1)
  direct <- model$features[0](torch()$tensor(x, dtype = torch()$float64))
  expect_equal(first, as.array(direct$detach()$numpy()), tolerance = 1e-12)
  if (torch()$cuda$is_available()) {
    model$cuda()
    expect_lt(max(check_equivariance(model, x)$error), 1e-12)
    expect_equal(dim(feature_maps(model, x, depth = 2)), c(2, 8, 28, 28))
  }
})

test_that("check_equivariance(group = \"D4\") reports the 8 elements by name", {
  skip_if_no_python()
  torch()$manual_seed(0L)
  x <- array(runif(2 * 13 * 13), c(2, 1, 13, 13))
  errors <- check_equivariance(d4_cnn(widths = c(2, 2, 3)), x, group = "D4")
  expect_equal(errors$element, c(
    "rot0", "rot90", "rot180", "rot270",
    "flip_rot0", "flip_rot90", "flip_rot180", "flip_rot270"
  ))
  expect_lt(max(errors$error), 1e-5) # invariant to all 8, up to float rounding
  # a D4 layer's output transforms as its regular representation under all 8
  layer <- d4_lifting_conv2d(1, 2, 3)
  expect_lt(max(check_equivariance(layer, x, group = "D4")$error), 1e-5)
  expect_gt(max(check_equivariance(layer, x, group = "D4", output = "rotate")$error), 1e-2)
  # a plain CNN is clearly not invariant; C4 stays the default, its elements named alike
  plain <- check_equivariance(simple_cnn(), x, group = "D4")
  expect_gt(min(plain$error[-1]), 1e-3)
  expect_equal(check_equivariance(simple_cnn(), x)$element, c("rot0", "rot90", "rot180", "rot270"))
  expect_error(check_equivariance(simple_cnn(), x, group = "O2"), "`group`.*\"D4\"",
    class = "equivariance_value_error"
  )
})
