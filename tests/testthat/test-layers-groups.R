rot <- function(x, k) reticulate::import("torch")$rot90(x, as.integer(k), dims = c(-2L, -1L))
randn <- function(...) as_tensor(array(rnorm(prod(c(...))), c(...)))

test_that("C4 layers give the walkthrough's shapes and transform like escnn's regular fields", {
  skip_if_no_python()
  layer <- c4_lifting_conv2d(1, 3, kernel_size = 3)
  x <- randn(2, 1, 32, 32)
  y <- layer(x)
  expect_equal(dim(as_r_array(y)), c(2, 12, 30, 30))
  for (k in 0:3) {
    expected <- as_r_array(core()$rotate_regular(y, as_py_int(k, "k")))
    expect_equal(as_r_array(layer(rot(x, k))), expected, tolerance = 1e-5)
  }
})

test_that("every layer and network is equivariant in train and eval mode", {
  skip_if_no_python()
  x_img <- array(rnorm(2 * 13 * 13), c(2, 1, 13, 13))
  x_reg <- array(rnorm(2 * 8 * 12 * 12), c(2, 8, 12, 12))
  # eq_cnn()'s unpadded filters need larger images; c4_cnn() takes any size
  x_big <- array(rnorm(2 * 28 * 28), c(2, 1, 28, 28))
  for (train in c(TRUE, FALSE)) {
    for (case in list(list(c4_cnn(), x_img), list(eq_cnn(), x_big))) {
      net <- case[[1]]
      net$train(train)
      res <- check_equivariance(net, case[[2]])
      expect_s3_class(res, "data.frame")
      expect_named(res, c("element", "error"))
      expect_equal(res$element, c("rot0", "rot90", "rot180", "rot270"))
      expect_lt(max(res$error), 1e-4)
    }
    bn <- c4_batch_norm2d(2)
    bn$train(train)
    expect_lt(max(check_equivariance(bn, x_reg)$error), 1e-4)
  }
  expect_lt(max(check_equivariance(c4_conv2d(2, 3, 3, padding = 1), x_reg)$error), 1e-4)
  expect_lt(max(check_equivariance(c4_group_pool("mean"), x_reg)$error), 1e-4)
  expect_lt(max(check_equivariance(c4_lifting_conv2d(1, 2, 3), x_img, output = "regular")$error), 1e-4)
})

test_that("check_equivariance separates C4CNN from SimpleCNN and accepts functions", {
  skip_if_no_python()
  x <- array(runif(2 * 28 * 28), c(2, 1, 28, 28))
  expect_lt(max(check_equivariance(c4_cnn(), x)$error), 1e-4)
  simple <- check_equivariance(simple_cnn(), x)
  expect_equal(simple$error[1], 0)
  expect_gt(min(simple$error[-1]), 1e-3)
  # output action given as an R function(y, k)
  shift <- function(y, k) core()$rotate_regular(y, k)
  res <- check_equivariance(c4_lifting_conv2d(1, 2, 3), x, output = shift)
  expect_lt(max(res$error), 1e-4)
  # a wrong action is detected
  expect_gt(max(check_equivariance(c4_lifting_conv2d(1, 2, 3), x, output = "rotate")$error), 1e-2)
})

test_that("parameter counts and export", {
  skip_if_no_python()
  count <- function(m) sum(vapply(reticulate::iterate(m$parameters()), function(p) p$numel(), numeric(1)))
  expect_lte(count(c4_cnn()), 14000)
  expect_equal(count(simple_cnn()), count(eq_cnn()))
  layer <- c4_conv2d(2, 3, 3)
  conv <- layer$export()
  x <- randn(1, 8, 9, 9)
  expect_equal(as_r_array(conv(x)), as_r_array(layer(x)), tolerance = 1e-5)
})

test_that("bad input gives R errors naming the argument", {
  skip_if_no_python()
  expect_error(c4_conv2d(2, 3, 2.5), "kernel_size")
  expect_error(c4_conv2d(0, 3, 3), "in_fields")
  expect_error(c4_lifting_conv2d(1, "a", 3), "out_fields")
  expect_error(c4_lifting_conv2d(1, 2, 3, padding = -1), "padding")
  expect_error(c4_lifting_conv2d(1, 2, 3, bias = NA), "bias")
  expect_error(c4_batch_norm2d(1.5), "num_fields")
  expect_error(c4_group_pool("median"), "mode")
  expect_error(c4_cnn(widths = c(8, 12)), "widths")
  expect_error(c4_cnn(widths = c(8, 0, 16)), "widths")
  expect_error(simple_cnn(num_classes = 0), "num_classes")
  x <- array(runif(28 * 28), c(1, 1, 28, 28))
  expect_error(check_equivariance(c4_cnn(), x, group = "D8"), "`group`")
  expect_error(check_equivariance(c4_cnn(), x, output = "spin"), "output")
  expect_error(check_equivariance(c4_cnn(), "x"), "`x`")
  expect_error(check_equivariance(42, x), "module")
  expect_error(check_equivariance(c4_conv2d(2, 2, 3), x), "8 channels")
})

test_that("feature_maps() gives R arrays that turn and shift with the input", {
  skip_if_no_python()
  torch()$manual_seed(0L)
  model <- c4_cnn()
  x <- array(runif(2 * 28 * 28), c(2, 1, 28, 28))
  maps <- feature_maps(model, x, depth = 3)
  expect_equal(dim(maps), c(2, 32, 28, 28))
  rot90 <- function(m) t(m)[ncol(m):1, ]
  turned_x <- x
  for (i in 1:2) turned_x[i, 1, , ] <- rot90(x[i, 1, , ])
  turned <- feature_maps(model, turned_x, depth = 3)
  # field 1, orientation 2 of the turned image is orientation 1 of the upright one, turned
  expect_equal(turned[1, 2, , ], rot90(maps[1, 1, , ]), tolerance = 1e-5)
  expect_equal(turned[2, 5, , ], rot90(maps[2, 8, , ]), tolerance = 1e-5)
  expect_error(feature_maps(model, x, depth = 0), "depth")
  expect_error(feature_maps(model, x, depth = 100), "depth")
  expect_error(feature_maps(eq_cnn(), x), "model")
  expect_error(feature_maps("model", x), "model")
  expect_error(feature_maps(model, "x"), "x")
})

test_that("a forward pass without gradients uses the current weights", {
  skip_if_no_python()
  th <- torch()
  layer <- c4_lifting_conv2d(1, 2, 3)
  layer$eval()
  x <- randn(1, 1, 6, 6)
  ctx <- th$no_grad()
  ctx$`__enter__`()
  before <- as_r_array(layer(x))
  ctx$`__exit__`(NULL, NULL, NULL)
  # an update through .data does not bump the version counter a cache was keyed on
  layer$weight$data$mul_(2)
  ctx <- th$no_grad()
  ctx$`__enter__`()
  after <- as_r_array(layer(x))
  ctx$`__exit__`(NULL, NULL, NULL)
  expect_equal(after, 2 * before, tolerance = 1e-6)
})

test_that("flags, rates and elements are not coerced into another meaning", {
  skip_if_no_python()
  expect_error(c4_lifting_conv2d(1, 2, 3, bias = "FALSE"), "`bias`")
  expect_error(c4_conv2d(1, 2, 3, bias = 0), "`bias`")
  expect_error(c4_batch_norm2d(2, momentum = 5), "`momentum` must be a number in \\[0, 1\\]",
               class = "equivariance_value_error")
  expect_error(c4_batch_norm2d(2, momentum = NaN), "`momentum`")
  expect_error(c4_batch_norm2d(2, eps = NaN), "`eps`")
  expect_equal(c4_batch_norm2d(2, momentum = 1)$momentum, 1)
  x <- randn(1, 4, 3, 3)
  expect_error(core()$rotate_regular(x, 1.5), "`k` must be a whole number")
})

test_that("a saved C4 convolution holds its weights, not its expanded filter", {
  skip_if_no_python()
  th <- torch()
  layer <- c4_conv2d(8, 8, 3)
  whole <- tempfile(fileext = ".pt")
  weights <- tempfile(fileext = ".pt")
  on.exit(unlink(c(whole, weights)))
  th$save(layer, whole)
  th$save(layer$state_dict(), weights)
  expect_lt(file.size(whole), file.size(weights) + 20000)
  back <- th$load(whole, weights_only = FALSE)
  x <- randn(1, 32, 5, 5)
  expect_equal(as_r_array(back(x)), as_r_array(layer(x)), tolerance = 1e-6)
})

test_that("c4_max_pool2d() and d4_max_pool2d() keep their group's equivariance on odd and even sizes", {
  skip_if_no_python()
  for (group in c("C4", "D4")) {
    pool <- if (group == "C4") c4_max_pool2d() else d4_max_pool2d()
    expect_match(class(pool)[1], paste0(group, "MaxPool2d$"))
    for (side in c(7, 8)) {
      x <- array(rnorm(2 * 8 * side * side), c(2, 8, side, side))
      expect_equal(dim(as.array(pool(as_tensor(x)))), c(2, 8, ceiling(side / 2), ceiling(side / 2)))
      res <- check_equivariance(pool, x, group = group)
      expect_equal(max(res$error), 0, label = paste(group, side))
    }
  }
  # the same maps for both groups
  x <- as_tensor(array(rnorm(8 * 5 * 5), c(1, 8, 5, 5)))
  expect_identical(as.array(c4_max_pool2d()(x)), as.array(d4_max_pool2d()(x)))
})
