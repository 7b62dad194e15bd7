# Faults by their real mechanism, from R: a killed R session, a FIFO, a folder no
# file can be created in, sizes that cannot fit, Python warnings, the user's own R
# errors, output with workers.

# A Python module the ranks can import: an augmentation that writes "pid ppid" of its
# rank to `folder`/rank<r> and then takes half a second per batch.
slow_augment_module <- function(dir) {
  writeLines(c(
    "import os, time",
    "class Slow:",
    "    def __init__(self, folder):",
    "        self.folder = folder",
    "    def __call__(self, x):",
    "        path = os.path.join(self.folder, 'rank' + os.environ.get('RANK', '0'))",
    "        if not os.path.exists(path):",
    "            with open(path + '.tmp', 'w') as fh:",
    "                fh.write(f'{os.getpid()} {os.getppid()}')",
    "            os.replace(path + '.tmp', path)",
    "        time.sleep(0.5)",
    "        return x"
  ), file.path(dir, "slow_augment.py"))
}

running <- function(pid) {
  stat <- file.path("/proc", pid, "stat")
  if (!file.exists(stat)) {
    return(FALSE)
  }
  state <- tryCatch(strsplit(sub("^.*\\) ", "", readLines(stat, warn = FALSE)), " ")[[1]][1],
    error = function(e) "X"
  )
  !state %in% c("Z", "X")
}

wait_until <- function(condition, seconds) {
  deadline <- Sys.time() + seconds # a deadline against hanging, not a timing measurement
  while (Sys.time() < deadline) {
    if (condition()) {
      return(TRUE)
    }
    Sys.sleep(0.2)
  }
  condition()
}

test_that("terminating the R session ends torchrun and every rank (workers = 2)", {
  skip_if_no_python()
  skip_if_not(file.exists("/proc/self/stat"), "reads /proc (Linux)")
  dir <- tempfile("orphans-")
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE), add = TRUE)
  slow_augment_module(dir)
  script <- file.path(dir, "caller.R")
  writeLines(c(
    "library(equivariance)",
    sprintf("Sys.setenv(PYTHONPATH = '%s')", dir),
    sprintf("slow <- reticulate::import_from_path('slow_augment', '%s')$Slow('%s')", dir, dir),
    "train <- fashion_mnist('train', limit = 16, root = 'subset')",
    "m <- reticulate::import('torch')$nn$Sequential(reticulate::import('torch')$nn$Flatten(),",
    "  reticulate::import('torch')$nn$Linear(784L, 10L))",
    "fit_model(m, train, epochs = 1000, batch_size = 2, augment = slow, verbose = FALSE,",
    "  workers = 2, timeout = 600)"
  ), script)
  caller <- processx::process$new(file.path(R.home("bin"), "Rscript"), script,
    env = c("current", R_LIBS = paste(.libPaths(), collapse = ":")),
    stdout = NULL, stderr = NULL
  )
  on.exit(if (caller$is_alive()) caller$kill(), add = TRUE)
  files <- file.path(dir, c("rank0", "rank1"))
  expect_true(wait_until(function() all(file.exists(files)), 240))
  pids <- as.integer(unlist(lapply(files, function(f) strsplit(readLines(f, warn = FALSE), " ")[[1]])))
  expect_true(all(vapply(pids, running, logical(1))))
  caller$signal(tools::SIGTERM) # R ends without running the core's clean-up
  caller$wait(10000)
  expect_true(wait_until(function() !any(vapply(pids, running, logical(1))), 30))
})

test_that("workers: early stopping on batch norm, the regularizer, Python callbacks, and the progress in capture.output()", {
  skip_if_no_python()
  train <- fashion_mnist("train", limit = 40, root = "subset")
  set_seed(1)
  model <- c4_cnn(widths = c(2, 2, 2)) # batch norm, synchronised by default
  reg <- equivariance_regularizer(model, c(1, 28, 28), list(list(transform_rot90(1), 0, 0.1)), n = 4)
  builtins <- reticulate::import_builtins()
  out <- capture.output(
    h <- fit_model(model, train,
      epochs = 2, batch_size = 8, regularizer = reg, validation_data = 0.2,
      patience = 1, callbacks = list(builtins$len), verbose = TRUE,
      seed = 1, workers = 2, timeout = 120
    )
  )
  expect_false(is.na(h$best_epoch))
  expect_true(any(grepl("epoch 1", out))) # rank 0's progress went through R's output
})

test_that("load_model() refuses a FIFO at once, and save_model() an unwritable folder", {
  skip_if_no_python()
  fifo <- tempfile(fileext = ".pt")
  expect_equal(system2("mkfifo", fifo), 0)
  on.exit(unlink(fifo), add = TRUE)
  expect_error(load_model(fifo), "must be a regular file, got a named pipe", class = "equivariance_value_error")
  a_file <- tempfile()
  writeLines("x", a_file)
  on.exit(unlink(a_file), add = TRUE)
  expect_error(save_model(simple_cnn(), file.path(a_file, "m.pt")), "`path` must be in a folder",
    class = "equivariance_value_error"
  )
  # /proc: a folder in which nobody, root included, can create a file
  expect_error(save_model(simple_cnn(), "/proc/m.pt"), "`path` .* cannot be written",
    class = "equivariance_value_error"
  )
  # png and csv are checked before the training, naming the argument
  expect_error(
    rotation_benchmark(models = "SimpleCNN", png = file.path(a_file, "p.png"), root = tempfile()),
    "`png` must be in a folder",
    class = "equivariance_value_error"
  )
  expect_error(
    rotation_benchmark(models = "SimpleCNN", csv = "/proc/t.csv", root = tempfile()),
    "`csv` .* cannot be written",
    class = "equivariance_value_error"
  )
})

test_that("sizes that cannot fit are refused naming the argument", {
  skip_if_no_escnn()
  expect_error(escnn_cnn(N = 2^40), "`N` = 1099511627776 needs .* of memory",
    class = "equivariance_value_error"
  )
  expect_error(c4_cnn(widths = c(1e12, 8, 8)), "`widths` = .*needs 36(.0)? TB",
    class = "equivariance_value_error"
  )
})

test_that("loading errors say what the file is, never torch's advice", {
  skip_if_no_python()
  path <- tempfile(fileext = ".pt")
  on.exit(unlink(path), add = TRUE)
  torch()$save(torch()$nn$Linear(2L, 2L), path)
  err <- tryCatch(load_model(path), equivariance_error = function(e) conditionMessage(e))
  expect_match(err, "holds Python objects")
  expect_no_match(err, "weights_only|file an issue|safe_globals|torch.load")
})

test_that("Python warnings become R warnings; the user's R errors keep their class", {
  skip_if_no_python()
  model <- c4_cnn(widths = c(2, 2, 2))
  model$head <- torch()$nn$Linear(4L, 3L) # no longer what its arguments build
  path <- tempfile(fileext = ".pt")
  on.exit(unlink(path), add = TRUE)
  expect_warning(save_model(model, path), "saving the weights of this C4CNN only",
    class = "equivariance_warning"
  )
  expect_silent(suppressWarnings(save_model(model, path)))
  caught <- tryCatch(save_model(model, path), warning = function(w) "caught")
  expect_equal(caught, "caught")
  mine <- function(...) stop(structure(class = c("my_error", "error", "condition"),
                                       list(message = "my own error", call = NULL)))
  train <- fashion_mnist("train", limit = 8, root = "subset")
  expect_error(fit_model(simple_cnn(), train, batch_size = 8, augment = mine, verbose = FALSE),
    "my own error",
    class = "my_error"
  )
  expect_error(fit_model(simple_cnn(), train, batch_size = 8, callbacks = list(mine), verbose = FALSE),
    class = "my_error"
  )
})
