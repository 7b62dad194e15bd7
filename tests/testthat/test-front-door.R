# The R front door: every exported wrapper reaches the core through call_py(), and
# arguments passed on through `...` are checked against the core's parameters
# before anything runs.

exported <- function() {
  ns <- asNamespace("equivariance")
  names <- getNamespaceExports(ns)
  names[vapply(names, function(n) is.function(get(n, envir = ns)), logical(1))]
}

#' The names of the package's functions that `f` calls, directly or through the
#' package's other functions.
reached <- function(f, ns = asNamespace("equivariance"), seen = character()) {
  calls <- intersect(all.names(body(f)), ls(ns, all.names = TRUE))
  for (name in setdiff(calls, seen)) {
    seen <- c(seen, name)
    g <- get(name, envir = ns)
    if (is.function(g)) seen <- union(seen, reached(g, ns, seen))
  }
  seen
}

test_that("every exported function that calls the core goes through call_py()", {
  ns <- asNamespace("equivariance")
  # functions that never call into the core: they only report whether it loads,
  # set up Python, or work on R objects the core returned
  outside <- c(
    "equivariance_available", "escnn_available", "install_equivariance",
    "as.array.torch.Tensor"
  )
  touching <- character()
  for (name in setdiff(exported(), outside)) {
    calls <- reached(get(name, envir = ns))
    expect_true("call_py" %in% calls, label = paste0(name, "() reaches call_py()"))
    if (any(c("core", "escnn_models") %in% calls)) touching <- c(touching, name)
  }
  # the check above looked at the wrappers that matter
  expect_true(all(c("c4_max_pool2d", "d4_conv2d", "transform_identity", "group_map",
                    "fit_model", "as_tensor") %in% touching))
})

test_that("the C4 and D4 layer wrappers, models and transforms call the core through call_py()", {
  skip_if_no_python()
  ns <- asNamespace("equivariance")
  calls <- 0L
  suppressMessages(trace("call_py", tracer = function() calls <<- calls + 1L, where = ns, print = FALSE))
  on.exit(suppressMessages(untrace("call_py", where = ns)), add = TRUE)
  cases <- list(
    quote(c4_lifting_conv2d(1, 2, 3)), quote(d4_lifting_conv2d(1, 2, 3)),
    quote(c4_conv2d(1, 2, 3)), quote(d4_conv2d(1, 2, 3)),
    quote(c4_batch_norm2d(2)), quote(d4_batch_norm2d(2)),
    quote(c4_group_pool()), quote(d4_group_pool()),
    quote(c4_max_pool2d()), quote(d4_max_pool2d()),
    quote(simple_cnn()), quote(eq_cnn()), quote(c4_cnn()), quote(d4_cnn()),
    quote(group_map(2, 4)), quote(layer_map(c(2, 3))), quote(instance_map(2)),
    quote(transform_identity()), quote(transform_rot90(1)), quote(transform_hflip()),
    quote(transform_vflip()), quote(transform_random_rot90()), quote(transform_translate(1, 0)),
    quote(transform_rotate(30)), quote(transform_random_rotate(10)), quote(as_tensor(1:3))
  )
  for (case in cases) {
    before <- calls
    value <- eval(case)
    expect_true(calls > before, label = paste(deparse(case), "calls call_py()"))
    expect_true(inherits(value, "python.builtin.object"), label = paste(deparse(case), "returns a Python object"))
  }
})

test_that("the wrappers built by core_call() pass arguments the core has", {
  skip_if_no_python()
  # core_call() passes every argument by its R name: each must be a parameter of
  # the core's callable (a drift would be Python's "unexpected keyword argument")
  pairs <- list(
    c4_lifting_conv2d = core()$C4LiftingConv2d, d4_lifting_conv2d = core()$D4LiftingConv2d,
    c4_conv2d = core()$C4Conv2d, d4_conv2d = core()$D4Conv2d,
    c4_batch_norm2d = core()$C4BatchNorm2d, d4_batch_norm2d = core()$D4BatchNorm2d,
    c4_group_pool = core()$C4GroupPool, d4_group_pool = core()$D4GroupPool,
    simple_cnn = core()$SimpleCNN, eq_cnn = core()$EqCNN, c4_cnn = core()$C4CNN,
    d4_cnn = core()$D4CNN, group_map = core()$GroupMap, layer_map = core()$LayerMap,
    instance_map = core()$InstanceMap, transform_rot90 = core()$transforms$rot90,
    transform_translate = core()$transforms$translate,
    transform_random_rotate = core()$transforms$random_rotate
  )
  for (name in names(pairs)) {
    params <- core_parameters(pairs[[name]])
    expect_true(all(names(formals(get(name))) %in% params), label = paste(name, "arguments"))
  }
})

test_that("c4_ and d4_ wrappers of a kind share their help page and their arguments", {
  for (kind in c("lifting_conv2d", "conv2d", "batch_norm2d", "group_pool", "max_pool2d")) {
    c4 <- get(paste0("c4_", kind))
    d4 <- get(paste0("d4_", kind))
    expect_identical(formals(c4), formals(d4))
    # one line each: the same helper, another class of the core
    expect_identical(body(c4)[[1]], quote(core_call))
    expect_identical(body(d4)[[1]], quote(core_call))
  }
  topics <- c("group_lifting_conv2d", "group_conv2d", "group_batch_norm2d", "group_pool",
              "group_max_pool2d")
  for (topic in topics) {
    expect_true(length(utils::help(topic, package = "equivariance")) == 1, label = topic)
  }
})

test_that("a misspelt argument of fit_model() is an R error suggesting the closest one", {
  skip_if_no_python()
  x <- array(runif(4 * 28 * 28), c(4, 1, 28, 28))
  data <- list(x, c(1, 2, 1, 2))
  model <- simple_cnn(num_classes = 2)
  err <- expect_error(fit_model(model, data, verbose = FALSE, validation_split = 0.2),
    class = "equivariance_argument_error")
  expect_identical(conditionMessage(err),
    "`fit_model()` has no argument `validation_split`; did you mean `validation_data`?")
  expect_s3_class(err, "equivariance_error")
  expect_identical(conditionCall(err)[[1]], quote(fit_model))
  err <- expect_error(fit_model(model, data, verbose = FALSE, learning_rate = 0.01),
    class = "equivariance_argument_error")
  expect_match(conditionMessage(err), "has no argument `learning_rate`; did you mean `lr`\\?$")
  expect_error(fit_model(model, data, verbose = FALSE, optimiser = NULL),
    "did you mean `optimizer`", class = "equivariance_argument_error")
  expect_error(fit_model(model, data, verbose = FALSE, reg_point = "sample"),
    "did you mean `reg_points`", class = "equivariance_argument_error")
  # nothing close: the message lists the arguments
  err <- expect_error(fit_model(model, data, verbose = FALSE, zzz = 1),
    class = "equivariance_argument_error")
  expect_match(conditionMessage(err), "no argument `zzz`\\. Its arguments: `model`, `data`, .*`optimizer`")
  expect_no_match(conditionMessage(err), "unexpected keyword")
  # arguments in `...` go by name only
  expect_error(fit_model(model, data, 1, 4, 0.01, NULL, NULL, NULL, FALSE, "extra"),
    "name every one", class = "equivariance_argument_error")
  # the check comes first: the model is not trained
  weights <- function() as.array(reticulate::iterate(model$parameters())[[1]])
  before <- weights()
  expect_error(fit_model(model, data, epochs = 1, verbose = FALSE, epoch = 3),
    "no argument `epoch`; did you mean `epochs`", class = "equivariance_argument_error")
  expect_identical(weights(), before)
})

test_that("arguments the core has pass the front door", {
  skip_if_no_python()
  torch <- reticulate::import("torch")
  x <- array(runif(4 * 28 * 28), c(4, 1, 28, 28))
  model <- simple_cnn(num_classes = 2)
  opt <- torch$optim$SGD(model$parameters(), lr = 0.1)
  history <- fit_model(model, list(x, c(1, 2, 1, 2)), verbose = FALSE, optimizer = opt,
    reg_points = "batch", reuse_outputs = FALSE)
  expect_s3_class(history, "equivariance_history")
})

test_that("closest_name() suggests by initials, shared beginnings and edit distance", {
  candidates <- c("lr", "validation_data", "optimizer", "batch_size", "epochs", "seed")
  expect_identical(closest_name("learning_rate", candidates), "lr")
  expect_identical(closest_name("validation_split", candidates), "validation_data")
  expect_identical(closest_name("optimiser", candidates), "optimizer")
  expect_identical(closest_name("batchsize", candidates), "batch_size")
  expect_identical(closest_name("seeds", candidates), "seed")
  expect_null(closest_name("zzz", candidates))
  expect_null(closest_name("x", character()))
})

test_that("a required argument left out is named with the wrapper", {
  skip_if_no_python()
  err <- expect_error(c4_conv2d(2, 3), class = "equivariance_error")
  expect_identical(conditionMessage(err), "`c4_conv2d()` needs `kernel_size`, which has no default.")
  expect_error(d4_lifting_conv2d(1, kernel_size = 3), "`d4_lifting_conv2d\\(\\)` needs `out_fields`")
})
