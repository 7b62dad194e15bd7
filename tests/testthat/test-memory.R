test_that("the core's memory release is installed when the package loads it", {
  skip_if_no_python()
  core()
  expect_false(is.null(.equivariance$memory))
  expect_true(is.function(.equivariance$memory$memory_grew))
})

test_that("calls into the core collect and release once the process has grown, without an optimizer step", {
  skip_if_no_python()
  reg <- equivariance_regularizer(small_cnn(), c(1, 12, 12),
                                  list(list(transform_rot90(1), 0, 1)), n = 2)
  seen <- new.env()
  seen$checks <- 0L
  seen$released <- 0L
  seen$reset <- 0L
  grown <- TRUE
  fake <- list(
    memory_grew = function(mb) {
      seen$checks <- seen$checks + 1L
      seen$mb <- mb
      grown
    },
    release_free_memory = function() {
      seen$released <- seen$released + 1L
      TRUE
    },
    reset_memory_floor = function() {
      seen$reset <- seen$reset + 1L
      NULL
    }
  )
  old <- list(memory = .equivariance$memory, calls = .equivariance$memory_calls)
  on.exit({
    .equivariance$memory <- old$memory
    .equivariance$memory_calls <- old$calls
  })
  .equivariance$memory <- fake
  .equivariance$memory_calls <- 0L
  for (i in 1:16) reg()
  # one check in 8 calls, each finding the process grown: collect, release, reset
  expect_equal(seen$checks, 2L)
  expect_equal(seen$mb, 16)
  expect_equal(seen$released, 2L)
  expect_equal(seen$reset, 2L)
  grown <- FALSE
  for (i in 1:8) reg()
  expect_equal(seen$checks, 3L)
  expect_equal(seen$released, 2L)
})
