# Memory of a training loop written by hand in R.
#
# 1,000 steps of: forward, cross-entropy + reg(), backward, optimizer step, on a
# small CNN, as the regularizer vignette writes it. R keeps every Python object it
# received until its garbage collector runs, so the loop's tensors outlive their
# step. The growth of the process's resident memory (VmRSS) is measured after 100
# warm-up steps (the baseline: the optimizer's state, the allocator's pools and the
# thread pools exist by then). Target: at most 50 MB over the 1,000 steps.
#
# Each variant runs in its own R process:
#   hand-written loop     the loop above, with the package's defaults
#   without the fix       the same loop with EQUIVARIANCE_RELEASE_MEMORY=0: no
#                         malloc_trim() after optimizer steps, so freed activation
#                         memory split by the small objects R still holds is not
#                         given back and the process grows by ~1 MB per step
#   no regularizer        the loop without reg()
#   train_step()          the same step done in Python by train_step(), R holds no tensor
#   reg(); backward       v <- reg(); v$backward(), with no optimizer at all
#   reg(R array)          v <- reg(xr); v$backward() where xr is an R array, which is
#                         converted to a tensor at every call; with and without an
#                         optimizer step, and without the fix
#
# Usage: Rscript bench/memory_loop.R [steps]

args <- commandArgs(trailingOnly = TRUE)
load_package <- function() {
  if (file.exists("DESCRIPTION") && requireNamespace("pkgload", quietly = TRUE) &&
    identical(unname(read.dcf("DESCRIPTION")[1, "Package"]), "equivariance")) {
    pkgload::load_all(quiet = TRUE)
  } else {
    library(equivariance)
  }
}

rss_mb <- function() {
  status <- readLines("/proc/self/status")
  as.numeric(gsub("[^0-9]", "", status[startsWith(status, "VmRSS:")])) / 1024
}

run_child <- function(variant, steps) {
  suppressMessages(load_package())
  torch <- reticulate::import("torch")
  torch$manual_seed(1L)
  train <- fashion_mnist("train", limit = 128, root = "subset")
  x <- train$images
  y <- torch$as_tensor(train$labels, dtype = torch$int64)
  model <- simple_cnn()
  reg <- equivariance_regularizer(
    model,
    shape = c(1, 28, 28),
    transforms = list(
      list(transform_rot90(1), 0, 1), list(transform_rot90(2), 0, 1),
      list(transform_rot90(3), 0, 1)
    ),
    n = 32, num_funcs = 1
  )
  xr <- array(runif(32 * 28 * 28), c(32, 1, 28, 28))
  criterion <- torch$nn$CrossEntropyLoss()
  optimizer <- torch$optim$Adam(model$parameters(), lr = 1e-3)
  step <- switch(variant,
    noreg = function() {
      optimizer$zero_grad()
      loss <- criterion(model(x), y)
      loss$backward()
      optimizer$step()
    },
    train_step = function() {
      train_step(model, optimizer, x, y, regularizer = reg)
    },
    reg_backward = function() {
      v <- reg()
      v$backward()
    },
    reg_array_backward = function() {
      v <- reg(xr)
      v$backward()
    },
    reg_array_step = function() {
      optimizer$zero_grad()
      v <- reg(xr)
      v$backward()
      optimizer$step()
    },
    function() {
      optimizer$zero_grad()
      loss <- criterion(model(x), y) + reg()
      loss$backward()
      optimizer$step()
    }
  )
  for (i in seq_len(100)) step()
  base <- rss_mb()
  peak <- 0
  start <- Sys.time()
  for (i in seq_len(steps)) {
    step()
    if (i %% 50 == 0) peak <- max(peak, rss_mb() - base)
  }
  seconds <- as.numeric(difftime(Sys.time(), start, units = "secs"))
  cat(sprintf("RESULT %.1f %.1f %.1f %.2f\n", base, rss_mb() - base, peak, 1000 * seconds / steps))
}

if (length(args) >= 2 && args[1] == "--child") {
  run_child(args[2], as.integer(args[3]))
  quit(save = "no")
}

steps <- if (length(args) >= 1) as.integer(args[1]) else 1000L
script <- normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1]))
variants <- list(
  list(name = "hand-written loop", variant = "loop", env = character()),
  list(name = "  without the fix", variant = "loop", env = "EQUIVARIANCE_RELEASE_MEMORY=0"),
  list(name = "  no regularizer", variant = "noreg", env = character()),
  list(name = "train_step()", variant = "train_step", env = character()),
  list(name = "reg(); backward, no step", variant = "reg_backward", env = character()),
  list(name = "reg(R array); backward, no step", variant = "reg_array_backward", env = character()),
  list(name = "  without the fix", variant = "reg_array_backward", env = "EQUIVARIANCE_RELEASE_MEMORY=0"),
  list(name = "reg(R array); backward; step", variant = "reg_array_step", env = character())
)
cat(sprintf("Resident memory growth over %d steps after 100 warm-up steps\n", steps))
cat("(simple_cnn(), batch 128, reg(): 3 rotations, n = 32, num_funcs = 1; target <= 50 MB)\n\n")
rows <- lapply(variants, function(v) {
  out <- system2(file.path(R.home("bin"), "Rscript"),
    c(shQuote(script), "--child", v$variant, steps),
    env = v$env, stdout = TRUE, stderr = FALSE
  )
  res <- as.numeric(strsplit(sub("^RESULT ", "", grep("^RESULT", out, value = TRUE)), " ")[[1]])
  data.frame(
    variant = v$name, baseline_MB = res[1], growth_MB = res[2], peak_growth_MB = res[3],
    ms_per_step = res[4], target_met = if (res[3] <= 50) "yes" else "no"
  )
})
table <- do.call(rbind, rows)
table$time_ratio <- round(table$ms_per_step / table$ms_per_step[1], 2)
print(table, row.names = FALSE, digits = 4)
