test_that("gspaces, elements and representation matrices match the walkthrough", {
  skip_if_no_escnn()
  gspace <- rot2d_on_r2(N = 4)
  expect_equal(reticulate::py_str(gspace$fibergroup), "C4")
  expect_equal(reticulate::py_str(rot2d_on_r2(N = -1)$fibergroup), "SO(2)")
  elements <- group_elements(gspace)
  expect_length(elements, 4)
  expect_equal(reticulate::py_str(elements[[2]]), "1[2pi/4]")

  m <- representation_matrix(gspace, "irrep_1", 1)
  expect_true(is.matrix(m))
  expect_equal(m, matrix(c(0, 1, -1, 0), 2), tolerance = 1e-12)
  expect_gt(abs(m[1, 1]), 0) # shown with its ~6e-17 rounding
  expect_lt(abs(m[1, 1]), 1e-15)
  expect_equal(representation_matrix(gspace, "irrep_1", elements[[2]]), m)

  r <- round(representation_matrix(gspace, "regular", 1))
  expect_equal(r, matrix(c(0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0), 4))
  expect_equal(dim(representation_matrix(gspace, "irrep_0", 1)), c(1, 1))
  expect_equal(dim(representation_matrix(gspace, "irrep_2", 3)), c(1, 1))
})

test_that("R2Conv, the 3-layer model and pooling give the walkthrough's shapes", {
  skip_if_no_escnn()
  gspace <- rot2d_on_r2(N = 4)
  in_type <- field_type(gspace, "trivial")
  out_type <- field_type(gspace, c("regular", "regular", "regular"))
  expect_equal(out_type$size, 12)
  conv <- r2_conv(in_type, out_type, kernel_size = 3)
  x <- geometric_tensor(array(rnorm(2 * 32 * 32), c(2, 1, 32, 32)), in_type)
  expect_equal(dim(as_r_array(conv(x)$tensor)), c(2, 12, 30, 30))

  model <- escnn_walkthrough_model()
  model$eval()
  y <- model(geometric_tensor(array(rnorm(17 * 17), c(1, 1, 17, 17)), model$in_type))
  expect_equal(dim(as_r_array(y$tensor)), c(1, 4, 11, 11))
  pooled <- pointwise_avg_pool(model$out_type, 11)(y)
  expect_equal(dim(as_r_array(pooled$tensor)), c(1, 4, 1, 1))
  invariant <- group_pooling(model$out_type)(pooled)
  expect_equal(dim(as_r_array(invariant$tensor)), c(1, 1, 1, 1))
  expect_lt(max(check_equivariance(model, array(rnorm(17 * 17), c(1, 1, 17, 17)))$error), 1e-4)

  # the same model assembled from the wrappers
  reg <- field_type(gspace, rep("regular", 4))
  manual <- escnn_sequential(r2_conv(in_type, reg, 3), inner_batch_norm(reg), escnn_relu(reg))
  expect_equal(manual$out_type$size, 16)
})

test_that("the vander example: four rotations come full circle, rotate-convolve commutes", {
  skip_if_no_escnn()
  torch <- reticulate::import("torch")
  gspace <- rot2d_on_r2(4)
  conv <- r2_conv(field_type(gspace, "trivial"), field_type(gspace, "regular"), kernel_size = 3)
  invisible(conv$weights$data$fill_(1))
  v <- torch$vander(torch$arange(0L, 4L))$view(1L, 1L, 4L, 4L)$float()
  x <- geometric_tensor(v, conv$in_type)
  g <- group_elements(gspace)[[2]]
  turned <- x
  for (i in 1:4) turned <- turned$transform(g)
  expect_equal(as_r_array(turned$tensor), as_r_array(x$tensor))
  a <- conv(x$transform(g))
  b <- conv(x)$transform(g)
  expect_equal(dim(as_r_array(a$tensor)), c(1, 4, 2, 2))
  expect_equal(as_r_array(a$tensor), as_r_array(b$tensor), tolerance = 1e-5)
})

test_that("our C4 layers and escnn agree on the action of C4", {
  skip_if_no_escnn()
  torch <- reticulate::import("torch")
  gspace <- rot2d_on_r2(4)
  layer <- c4_lifting_conv2d(1, 2, 3)
  x <- array(rnorm(9 * 9), c(1, 1, 9, 9))
  y <- geometric_tensor(layer(as_tensor(x)), field_type(gspace, rep("regular", 2)))
  for (k in 0:3) {
    g <- group_elements(gspace)[[k + 1]]
    xr <- torch$rot90(as_tensor(x), as.integer(k), dims = c(-2L, -1L))
    expect_equal(as_r_array(layer(xr)), as_r_array(y$transform(g)$tensor), tolerance = 1e-5)
  }
  expect_lt(max(check_equivariance(escnn_c4_cnn(), array(runif(2 * 15 * 15), c(2, 1, 15, 15)))$error), 1e-4)
})

test_that("escnn wrappers give R errors naming the argument", {
  skip_if_no_escnn()
  gspace <- rot2d_on_r2(4)
  expect_error(rot2d_on_r2(N = 2.5), "`N`")
  expect_error(rot2d_on_r2(N = 0), "`N`")
  expect_error(field_type(gspace, c("regular", "spin")), "reprs")
  expect_error(field_type(gspace, character()), "reprs")
  expect_error(field_type("C4", "regular"), "gspace")
  in_type <- field_type(gspace, "trivial")
  out_type <- field_type(gspace, "regular")
  expect_error(r2_conv(in_type, out_type, kernel_size = 1.5), "kernel_size")
  expect_error(r2_conv(in_type, "regular", kernel_size = 3), "out_type")
  expect_error(geometric_tensor(array(0, c(1, 3, 5, 5)), out_type), "`x`.*4 channels")
  x <- geometric_tensor(array(0, c(1, 1, 5, 5)), in_type)
  expect_error(geometric_tensor(x, out_type), "field type")
  expect_error(check_equivariance(r2_conv(out_type, out_type, 3), x), "field type")
  expect_error(representation_matrix(gspace, "irrep_9", 1), "irrep_9")
  expect_error(representation_matrix(gspace, "regular", 1.5), "element")
  expect_error(group_elements(rot2d_on_r2(-1)), "infinitely")
  expect_error(pointwise_avg_pool(out_type, 0), "kernel_size")
})

test_that("any rotation order, mirrors and SO(2): gspaces, layers and pooling", {
  skip_if_no_escnn()
  c8 <- rot2d_on_r2(N = 8)
  d4 <- flip_rot2d_on_r2(N = 4)
  expect_equal(reticulate::py_str(c8$fibergroup), "C8")
  expect_equal(reticulate::py_str(d4$fibergroup), "D4")
  expect_equal(reticulate::py_str(flip_rot2d_on_r2(N = -1, maximum_frequency = 2)$fibergroup), "O(2)")
  expect_length(group_elements(d4), 8)
  expect_equal(round(representation_matrix(d4, "irrep_1,1", 4)), matrix(c(1, 0, 0, -1), 2))
  for (gspace in list(c8, d4)) {
    regular <- field_type(gspace, rep("regular", 2))
    expect_equal(regular$size, 16)
    model <- escnn_sequential(
      r2_conv(field_type(gspace, "trivial"), regular, kernel_size = 3),
      inner_batch_norm(regular), escnn_relu(regular), group_pooling(regular)
    )
    model$eval()
    y <- model(geometric_tensor(array(rnorm(2 * 7 * 7), c(2, 1, 7, 7)), model$in_type))
    expect_equal(dim(as_r_array(y$tensor)), c(2, 2, 5, 5))
  }
  # our D4 layer's output transforms as escnn's regular D4 fields
  layer <- d4_lifting_conv2d(1, 2, 3)
  x <- as_tensor(array(rnorm(9 * 9), c(1, 1, 9, 9)))
  y <- geometric_tensor(layer(x), field_type(d4, rep("regular", 2)))
  x_escnn <- geometric_tensor(x, field_type(d4, "trivial"))
  for (g in group_elements(d4)) {
    expect_equal(as_r_array(layer(x_escnn$transform(g)$tensor)), as_r_array(y$transform(g)$tensor),
      tolerance = 1e-5
    )
  }

  so2 <- rot2d_on_r2(N = -1, maximum_frequency = 2)
  expect_equal(reticulate::py_str(so2$fibergroup), "SO(2)")
  irreps <- field_type(so2, c("irrep_0", "irrep_1", "irrep_2"))
  model <- escnn_sequential(
    r2_conv(field_type(so2, "trivial"), irreps, kernel_size = 5, padding = 2),
    iid_batch_norm(irreps), norm_nonlinearity(irreps), norm_pool(irreps)
  )
  model$eval()
  z <- array(rnorm(9 * 9), c(1, 1, 9, 9))
  expect_equal(dim(as_r_array(model(geometric_tensor(z, model$in_type))$tensor)), c(1, 3, 9, 9))
  expect_error(inner_batch_norm(irreps), "iid_batch_norm", class = "equivariance_value_error")
  expect_error(escnn_relu(irreps), "norm_nonlinearity", class = "equivariance_value_error")
})

test_that("escnn_cnn for C8 and D4 is invariant on the pixel grid", {
  skip_if_no_escnn()
  x <- array(runif(2 * 11 * 11), c(2, 1, 11, 11))
  c8 <- escnn_cnn(N = 8, widths = c(2, 2, 3))
  expect_lt(max(check_equivariance(c8, x)$error), 1e-4)
  d4 <- escnn_cnn(N = 4, flips = TRUE, widths = c(2, 2, 3))
  d4$eval()
  logits <- as_r_array(d4(as_tensor(x)))
  expect_equal(dim(logits), c(2, 10))
  expect_equal(as_r_array(d4(as_tensor(x[, , , 11:1, drop = FALSE]))), logits, tolerance = 1e-4)
  expect_equal(escnn_cnn(N = 8)$blocks[[0]]$out_type$size, 32) # c4_cnn's channels
})

test_that("escnn group arguments are checked", {
  skip_if_no_escnn()
  expect_error(flip_rot2d_on_r2(N = 0), "`N`", class = "equivariance_value_error")
  expect_error(flip_rot2d_on_r2(N = 2.5), "`N`", class = "equivariance_value_error")
  expect_error(rot2d_on_r2(N = -1, maximum_frequency = 0), "`maximum_frequency`",
    class = "equivariance_value_error"
  )
  expect_error(escnn_cnn(N = -1), "`N`", class = "equivariance_value_error")
  expect_error(escnn_cnn(N = 4, flips = NA), "`flips`", class = "equivariance_error")
  expect_error(escnn_cnn(N = 4, flips = c(TRUE, FALSE)), "`flips`", class = "equivariance_error")
  expect_error(norm_nonlinearity(field_type(rot2d_on_r2(4), "regular"), fn = "relu"), "`fn`",
    class = "equivariance_value_error"
  )
})
