rot_transforms <- function() {
  list(list(transform_rot90(1), 0, 1), list(transform_rot90(2), 0, 1))
}

test_that("reg() returns a differentiable scalar that reaches the model", {
  skip_if_no_python()
  model <- small_cnn()
  reg <- equivariance_regularizer(model, c(1, 12, 12), rot_transforms(), n = 4, num_funcs = 2)
  expect_s3_class(reg, "equivariance_regularizer")
  value <- reg()
  expect_true(value$requires_grad)
  expect_equal(length(value$shape), 0L)
  expect_gt(value$item(), 0)
  value$backward()
  expect_gt(model[0]$weight$grad$abs()$sum()$item(), 0)
})

test_that("reg(x) with an R array equals the direct computation", {
  skip_if_no_python()
  model <- small_cnn()$eval()
  th <- torch()
  x <- array(runif(3 * 12 * 12), c(3, 1, 12, 12))
  reg <- equivariance_regularizer(model, c(1, 12, 12),
    list(list(f_out = transform_identity(), f_in = transform_rot90(1), epsilon = 0, lambda = 2)))
  xt <- th$tensor(x, dtype = th$float32)
  a <- model(xt)
  b <- model(th$rot90(xt, 1L, c(-2L, -1L)))
  direct <- 2 * (a - b)$norm(dim = 1L)$mean()$item()
  expect_equal(reg(x)$item(), direct, tolerance = 1e-5)
  # index order is preserved: the same data as a tensor gives the same value
  expect_equal(reg(xt)$item(), direct, tolerance = 1e-5)
})

test_that("every transform form is accepted, including R functions", {
  skip_if_no_python()
  model <- small_cnn()$eval()
  x <- array(runif(2 * 8 * 8), c(2, 1, 8, 8))
  # an R transform: mirror images, leave the classifier's logits alone
  flip <- function(t) if (length(t$shape) >= 3) t$flip(-1L) else t
  forms <- list(
    list(transform_identity(), flip, 0, 1),
    list(f_out = transform_identity(), f_in = flip, epsilon = 0, lambda = 1),
    list(flip, 0, 1),
    list(f = flip, epsilon = 0, lambda = 1),
    list(transform_hflip(), 0, 1)
  )
  values <- vapply(forms, function(t) {
    equivariance_regularizer(model, c(1, 8, 8), list(t))(x)$item()
  }, numeric(1))
  expect_true(all(values > 0))
  expect_equal(values, rep(values[1], length(values)), tolerance = 1e-6)
})

test_that("an exactly invariant model has zero error for random rotations", {
  skip_if_no_python()
  th <- torch()
  invariant <- function(x) {
    th$stack(list(x$mean(c(-1L, -2L, -3L)), x$amax(c(-1L, -2L, -3L))), dim = 1L)
  }
  reg <- equivariance_regularizer(invariant, c(1, 9, 9),
    list(list(transform_random_rot90(), 0, 1)), n = 8)
  expect_equal(reg()$item(), 0, tolerance = 1e-6)
})

test_that("dist accepts p, Inf, names and R functions", {
  skip_if_no_python()
  model <- small_cnn()$eval()
  x <- array(runif(2 * 8 * 8), c(2, 1, 8, 8))
  tr <- list(list(transform_identity(), transform_rot90(1), 0, 1))
  value <- function(dist) equivariance_regularizer(model, c(1, 8, 8), tr, dist = dist)(x)$item()
  expect_equal(value(Inf), value("inf"))
  expect_gt(value(1), value(2))
  expect_gt(value(2), value(Inf))
  expect_equal(value(function(a, b) (a - b)$abs()$sum(1L)), value(1), tolerance = 1e-6)
  expect_gt(value("cross_entropy_logits"), 0)
  expect_gt(value("kl_logits"), 0)
  expect_gt(value("js_logits"), 0)
  expect_gt(value("kl_logits_target"), 0)
})

test_that("every named distance is 0 for an exactly invariant model", {
  skip_if_no_python()
  th <- torch()
  nn <- th$nn
  th$manual_seed(3L)
  g <- nn$Sequential(nn$Flatten(), nn$Linear(64L, 5L))
  gp <- nn$Sequential(g, nn$Softmax(dim = 1L))
  flip_invariant <- function(h) function(x) h(x + x$flip(-1L))
  tr <- list(list(transform_hflip(), 0, 1))
  for (dist in list(1, 2, Inf, "cross_entropy", "cross_entropy_logits", "kl_logits", "kl_logits_target", "js_logits")) {
    h <- if (identical(dist, "cross_entropy")) gp else g
    inv <- equivariance_regularizer(flip_invariant(h), c(1, 8, 8), tr, dist = dist, n = 4)
    plain <- equivariance_regularizer(h, c(1, 8, 8), tr, dist = dist, n = 4)
    expect_equal(inv()$item(), 0, tolerance = 1e-6, label = format(dist))
    expect_gt(plain()$item(), 1e-4, label = format(dist))
  }
})

test_that("a dist function returning NA or NaN is an error naming dist", {
  skip_if_no_python()
  tr <- list(list(transform_rot90(1), 0, 1))
  for (f in list(function(a, b) NA, function(a, b) NA_real_, function(a, b) c(1, NA),
                 function(a, b) "far")) {
    reg <- equivariance_regularizer(small_cnn(), c(1, 8, 8), tr, dist = f, n = 2)
    expect_error(reg(), "`dist`")
  }
  reg <- equivariance_regularizer(small_cnn(), c(1, 8, 8), tr, dist = function(a, b) NaN, n = 2)
  expect_error(reg(), "`dist`.*NaN")
  ok <- equivariance_regularizer(small_cnn(), c(1, 8, 8), tr, dist = function(a, b) 0.5, n = 2)
  expect_equal(ok()$item(), 0.5)
})

test_that("non-finite points are an error naming x", {
  skip_if_no_python()
  reg <- equivariance_regularizer(small_cnn(), c(1, 8, 8), rot_transforms())
  x <- array(0.5, c(2, 1, 8, 8))
  x[2, 1, 3, 4] <- Inf
  expect_error(reg(x), "`x`.*finite")
  expect_error(equivariance_errors(reg, x), "`x`.*finite")
  x[2, 1, 3, 4] <- NaN
  expect_error(reg(x), "`x`")
})

test_that("bounds accept every R form and samples lie inside", {
  skip_if_no_python()
  forms <- list(
    c(2, 3), list(2, 3), list(lower = 2, upper = 3),
    list(lower = array(2, c(1, 4, 4)), upper = array(3, c(1, 4, 4))),
    array(rep(c(2, 3), each = 16), c(1, 4, 4, 2))
  )
  for (b in forms) {
    reg <- equivariance_regularizer(small_cnn(), c(1, 4, 4), rot_transforms(), n = 50, bounds = b)
    s <- as_r_array(attr(reg, "py")$sample())
    expect_equal(dim(s), c(50, 1, 4, 4))
    expect_true(all(s >= 2 & s <= 3))
  }
})

test_that("equivariance_errors() returns a data.frame of raw errors", {
  skip_if_no_python()
  reg <- equivariance_regularizer(small_cnn(), c(1, 8, 8),
    list(list(transform_rot90(1), 0.5, 10), list(transform_identity(), 0, 1)), n = 4)
  errs <- equivariance_errors(reg)
  expect_s3_class(errs, "data.frame")
  expect_named(errs, c("transform", "error"))
  expect_equal(errs$transform, c("rot90(k=1)", "identity"))
  expect_gt(errs$error[1], 0)
  expect_equal(errs$error[2], 0)
  at_x <- equivariance_errors(reg, array(0.5, c(2, 1, 8, 8)))
  expect_equal(nrow(at_x), 2)
})

test_that("print shows the settings", {
  skip_if_no_python()
  reg <- equivariance_regularizer(small_cnn(), c(1, 8, 8), rot_transforms(), n = 3)
  out <- capture.output(print(reg))
  expect_match(out[1], "equivariance_regularizer")
  expect_true(any(grepl("rot90\\(k=2\\)", out)))
  expect_true(any(grepl("3 points", out)))
})

test_that("seeded calls are reproducible and settings unchanged by reg(x)", {
  skip_if_no_python()
  th <- torch()
  reg <- equivariance_regularizer(small_cnn(), c(1, 8, 8),
    list(list(transform_rot90(1), 0, 1), list(transform_random_rot90(), 0, 1),
         list(transform_vflip(), 0, 1)), n = 3)
  th$manual_seed(7L)
  a <- reg()$item()
  th$manual_seed(7L)
  b <- reg()$item()
  expect_identical(a, b)
  reg(array(0, c(9, 1, 8, 8)))
  expect_equal(attr(reg, "py")$n, 3L)
})

test_that("the model's buffers and mode are untouched", {
  skip_if_no_python()
  th <- torch()
  nn <- th$nn
  model <- nn$Sequential(nn$Conv2d(1L, 2L, 3L), nn$BatchNorm2d(2L), nn$Flatten())
  model$train()
  before <- as_r_array(model[1]$running_mean)
  reg <- equivariance_regularizer(model, c(1, 6, 6), rot_transforms(), n = 4, mode = "train")
  reg()$backward()
  expect_equal(as_r_array(model[1]$running_mean), before)
  expect_true(model$training)
})

test_that("arithmetic combines tensors and numbers in R", {
  skip_if_no_python()
  th <- torch()
  a <- th$tensor(2)
  expect_equal((a + 1)$item(), 3)
  expect_equal((3 * a - a / 2)$item(), 5)
  expect_equal((-a)$item(), -2)
  expect_equal((a^2)$item(), 4)
  expect_true((a > 1)$item())
  expect_error(a + c(1, 2), "single numbers")
})

test_that("bad input gives R errors naming the argument", {
  skip_if_no_python()
  m <- small_cnn()
  tr <- rot_transforms()
  shp <- c(1, 8, 8)
  expect_error(equivariance_regularizer(m, shp, tr, n = 0), "`n`")
  expect_error(equivariance_regularizer(m, shp, tr, n = 2.5), "`n`")
  expect_error(equivariance_regularizer(m, shp, tr, n = "3"), "`n`")
  expect_error(equivariance_regularizer(m, shp, tr, num_funcs = -1), "`num_funcs`")
  expect_error(equivariance_regularizer(m, shp, tr, num_funcs = 1.5), "`num_funcs`")
  expect_error(equivariance_regularizer(m, c(1, 0, 8), tr), "`shape`")
  expect_error(equivariance_regularizer(m, c(1, 8.5, 8), tr), "`shape`")
  expect_error(equivariance_regularizer(m, shp, tr, bounds = c(1, 0)), "`bounds`")
  expect_error(equivariance_regularizer(m, shp, tr, bounds = c(0, 1, 2)), "`bounds`")
  expect_error(equivariance_regularizer(m, shp, tr, bounds = list(lower = 1, upper = 0)), "`bounds`")
  expect_error(equivariance_regularizer(m, shp, tr, bounds = array(0, c(3, 3, 2))), "`bounds`")
  expect_error(equivariance_regularizer(m, shp, tr, dist = "hamming"), "`dist`")
  # the message lists every accepted name
  for (name in c("inf", "cross_entropy", "cross_entropy_logits", "kl_logits", "kl_logits_target", "js_logits")) {
    expect_error(equivariance_regularizer(m, shp, tr, dist = "hamming"), name, fixed = TRUE)
  }
  expect_error(equivariance_regularizer(m, shp, tr, dist = 0.5), "`dist`")
  expect_error(equivariance_regularizer(m, shp, list()), "`transforms`")
  expect_error(equivariance_regularizer(m, shp, list(transform_rot90(1), 0, 1)), "`transforms`")
  expect_error(equivariance_regularizer(m, shp, list(list(transform_rot90(1), 0))), "transforms\\[\\[1\\]\\]")
  expect_error(equivariance_regularizer(m, shp, list(list(1, 2, 3, 4, 5))), "transforms\\[\\[1\\]\\]")
  expect_error(equivariance_regularizer(m, shp, list(list("f", 0, 1))), "transforms[[1]]`: `f` must be callable", fixed = TRUE)
  expect_error(equivariance_regularizer(m, shp, list(list(transform_rot90(1), -1, 1))), "epsilon")
  expect_error(equivariance_regularizer(m, shp, list(list(transform_rot90(1), 0, 1), list(transform_rot90(1), NaN, 1))),
    "^[^`]*`[^`]+` must", class = "error")
  expect_error(equivariance_regularizer(m, shp, list(list(transform_rot90(1), 0, -1))), "lambda")
  expect_error(equivariance_regularizer(m, shp, list(list(f = transform_rot90(1), eps = 0, lambda = 1))), "eps")
  expect_error(transform_rot90(1.5), "`k`")
  expect_error(transform_translate(dx = "a"), "`dx`")
  reg <- equivariance_regularizer(m, shp, tr)
  expect_error(reg(array(0, c(2, 1, 5, 5))), "`x`")
  expect_error(reg("a"), "`x`")
  expect_error(equivariance_errors(function() 1), "`reg`")
})
