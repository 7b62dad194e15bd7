# Training on several local processes: fit_model(workers = K) and
# rotation_benchmark(workers = K).
#
# The R layer only converts: the core's parallel_fit() and parallel_rotation_benchmark()
# save the arguments to a temporary folder, start K ranks with
# `python -m torch.distributed.run` on the interpreter reticulate runs (so the ranks
# import the same packages), train data-parallel with torch.distributed (gloo on the
# CPU, nccl on GPUs), and return the same Python objects as a single-process call:
# the model trained in place and its History, or the BenchmarkResult. A rank that
# fails stops the others; its error comes back as a Python error naming the rank,
# which call_py() turns into a classed R condition.

#' TRUE when `workers` asks for the ordinary single-process call.
#' @noRd
single_process <- function(workers) {
  is.numeric(workers) && length(workers) == 1 && !is.na(workers) && workers == 1
}

#' The launcher's arguments as Python values (the core checks them).
#' @noRd
as_py_workers <- function(workers, timeout, port) {
  list(
    workers = as_py_int(workers, "workers"),
    timeout = as_py_number(timeout, "timeout"),
    port = if (is.null(port)) NULL else as_py_int(port, "port"),
    python = reticulate::py_config()$python,
    # rank 0's progress through R's output, which capture.output(), sink() and knitr see
    echo = py_function(function(text) cat(text))
  )
}

#' Call the core's `fun` (a name) with `args` in one process when `workers` is 1,
#' else its parallel version on `workers` local processes.
#' @noRd
call_with_workers <- function(fun, args, workers, timeout, port) {
  if (single_process(workers)) {
    return(call_py(do.call(core()[[fun]], args)))
  }
  launcher <- paste0("parallel_", fun)
  # the worker processes inherit it: their messages count labels from 1 too
  restore <- set_python_env(.equivariance$validation$LABEL_BASE_ENV, "1")
  on.exit(restore(), add = TRUE)
  call_py(do.call(core()[[launcher]], c(args, as_py_workers(workers, timeout, port))))
}

#' Set the environment variable `name` of the Python process (the one its child
#' processes inherit) to `value`; returns a function that puts back what it was.
#' @noRd
set_python_env <- function(name, value) {
  environ <- reticulate::import("os", convert = FALSE)$environ
  old <- reticulate::py_to_r(environ$get(name))
  environ$`__setitem__`(name, value)
  function() {
    if (is.null(old)) environ$pop(name, NULL) else environ$`__setitem__`(name, old)
    invisible()
  }
}
