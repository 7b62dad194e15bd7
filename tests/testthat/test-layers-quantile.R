map_r <- function(m, x) {
  as_r_array(m(as_py_tensor(x, "x")))
}

test_that("group_map maps each group onto the target's quantiles", {
  skip_if_no_python()
  set.seed(1)
  x <- array(rnorm(2 * 4 * 25), dim = c(2, 4, 5, 5))
  y <- map_r(group_map(2, 4, target = "gaussian", affine = FALSE), x)
  expect_equal(dim(y), dim(x))
  # first sample, first group = channels 1 and 2
  got <- sort(as.vector(y[1, 1:2, , ]))
  expect_equal(got, qnorm((seq_len(50) - 0.5) / 50), tolerance = 1e-5)
  # monotone in the input within the group
  xs <- as.vector(x[1, 1:2, , ])
  ys <- as.vector(y[1, 1:2, , ])
  expect_true(all(diff(ys[order(xs)]) >= 0))
  u <- map_r(group_map(2, 4, target = "uniform", affine = FALSE), x)
  expect_equal(sort(as.vector(u[2, 3:4, , ])), (seq_len(50) - 0.5) / 50, tolerance = 1e-6)
})

test_that("an R function works as the target", {
  skip_if_no_python()
  x <- array(rnorm(3 * 2 * 20), dim = c(3, 2, 20))
  y <- map_r(group_map(1, 2, target = function(q) qexp(q), affine = FALSE), x)
  expect_equal(sort(as.vector(y[1, , ])), qexp((seq_len(40) - 0.5) / 40), tolerance = 1e-5)
  lm <- layer_map(c(2, 20), target = function(q) qnorm(q, mean = 3), elementwise_affine = FALSE)
  z <- map_r(lm, x)
  expect_equal(mean(z), 3, tolerance = 1e-5)
})

test_that("layer_map and instance_map group like LayerNorm and InstanceNorm", {
  skip_if_no_python()
  x <- array(runif(2 * 3 * 4 * 5), dim = c(2, 3, 4, 5))
  lm <- layer_map(c(3, 4, 5), target = "uniform")
  expect_equal(dim(as_r_array(lm$weight)), c(3, 4, 5))
  y <- map_r(lm, x)
  expect_equal(sort(as.vector(y[2, , , ])), (seq_len(60) - 0.5) / 60, tolerance = 1e-6)
  im <- instance_map(3, target = "uniform")
  y <- map_r(im, x)
  expect_equal(sort(as.vector(y[1, 2, , ])), (seq_len(20) - 0.5) / 20, tolerance = 1e-6)
  expect_null(im$weight)
})

test_that("running statistics make eval mode independent of the batch", {
  skip_if_no_python()
  th <- reticulate::import("torch")
  th$manual_seed(1L)
  m <- group_map(2, 4, track_running_stats = TRUE, momentum = NULL)
  for (i in 1:5) m(th$randn(8L, 4L, 6L, 6L))
  expect_equal(m$num_batches_tracked$item(), 5)
  m$eval()
  x <- array(rnorm(2 * 4 * 36), dim = c(2, 4, 6, 6))
  other <- x
  other[2, , , ] <- 10 * other[2, , , ]
  a <- map_r(m, x)
  b <- map_r(m, other)
  expect_equal(a[1, , , ], b[1, , , ])
})

test_that("gradients reach the input with grad = 'transport' only", {
  skip_if_no_python()
  th <- reticulate::import("torch")
  x <- th$randn(2L, 4L, 16L, 16L)$mul(3)$requires_grad_(TRUE)
  group_map(1, 4, affine = FALSE)(x)$sum()$backward()
  g <- as_r_array(x$grad)
  expect_true(all(is.finite(g)))
  expect_equal(mean(g), 1 / 3, tolerance = 0.1)
  x2 <- th$randn(2L, 4L, 5L)$requires_grad_(TRUE)
  y <- group_map(2, 4, grad = "none", affine = FALSE)(x2)
  expect_false(y$requires_grad)
})

test_that("sketch mode and float64 work", {
  skip_if_no_python()
  m <- group_map(1, 2, method = "sketch", dtype = "float64")
  expect_equal(m$method, "sketch")
  expect_equal(m$weight$dtype, reticulate::import("torch")$float64)
})

test_that("bad arguments give R errors naming the argument", {
  skip_if_no_python()
  expect_error(group_map(3, 8), "num_channels")
  expect_error(group_map(2.5, 5), "num_groups")
  expect_error(group_map(0, 4), "num_groups")
  expect_error(group_map(2, 4, target = "gausian"), "target")
  expect_error(group_map(2, 4, target = 3), "target")
  expect_error(group_map(2, 4, target = function(q) -q), "target")
  expect_error(group_map(2, 4, target = function(q) q[1:3]), "target")
  expect_error(group_map(2, 4, method = "fast"), "method")
  expect_error(group_map(2, 4, grad = "all"), "grad")
  expect_error(group_map(2, 4, affine = "yes"), "affine")
  expect_error(group_map(2, 4, momentum = 2), "momentum")
  expect_error(group_map(2, 4, eps = -1), "eps")
  expect_error(group_map(2, 4, dtype = "int"), "dtype")
  expect_error(layer_map(c(4, 0.5)), "normalized_shape")
  expect_error(instance_map(-1), "num_features")
})

test_that("bad inputs give errors naming the problem", {
  skip_if_no_python()
  m <- group_map(2, 4)
  expect_error(map_r(m, array(0, dim = c(2, 6, 5))), "channels")
  expect_error(map_r(layer_map(c(5, 6)), array(0, dim = c(2, 5, 7))), "normalized_shape")
  x <- array(seq(-1, 1, length.out = 40), dim = c(2, 4, 5))
  bad <- as_py_tensor(x, "x")$log() # NaN where x < 0
  expect_error(m(bad), "NaN")
  expect_error(map_r(m, x[, 1:3, ]), "channels")
})

test_that("a target returning NA or NaN is an error naming `target`", {
  skip_if_no_python()
  # a logical NA reaches Python as True, which read as 1 mapped everything to 1
  expect_error(group_map(2, 4, target = function(q) rep(NA, length(q))),
               "`target` must return numbers", class = "equivariance_value_error")
  expect_error(group_map(2, 4, target = function(q) rep(NaN, length(q))), "`target`",
               class = "equivariance_value_error")
  # finite on the probe grid, NaN near 0: found when first used
  m <- group_map(1, 1, target = function(q) ifelse(q < 0.001, NaN, qnorm(q)))
  expect_error(m(torch()$randn(1L, 1L, 1000L)), "`target`.*NaN or infinite")
})

test_that("infinite inputs give finite outputs after training on a constant", {
  skip_if_no_python()
  th <- torch()
  m <- group_map(1, 2, affine = FALSE, track_running_stats = TRUE, momentum = NULL)
  m(th$full(c(4L, 2L, 10L), 3))
  m$eval()
  x <- th$tensor(c(Inf, -Inf, 3, 2, 4))$view(c(1L, 1L, 5L))$expand(c(1L, 2L, 5L))
  y <- as_r_array(m(x))
  expect_true(all(is.finite(y)))
  expect_equal(y[1, 1, 1], max(y))
  expect_equal(y[1, 1, 2], min(y))
})

test_that("saving a map with an R function target says to save the state dict", {
  skip_if_no_python()
  th <- torch()
  path <- tempfile(fileext = ".pt")
  on.exit(unlink(path))
  m <- group_map(2, 4, target = function(q) qexp(q))
  expect_error(th$save(m, path), "`target`.*cannot be saved.*state_dict")
  th$save(m$state_dict(), path)
  fresh <- group_map(2, 4, target = function(q) qexp(q))
  fresh$load_state_dict(th$load(path))
  x <- th$randn(2L, 4L, 5L)
  expect_equal(as_r_array(fresh(x)), as_r_array(m(x)))
})
