# The progress display of fit_model() and rotation_benchmark(): one cli progress bar
# per epoch, driven by the events of the core's ProgressEvents callback, and a line
# per epoch once it is done. The bar's text is composed here so that its ETA always
# fits: the head (model k of n, epoch, bar, steps, ETA, overall ETA) comes first and
# the figures follow while they fit in the console's width (80 columns at most).

#' "4s", "3m05s", "1h02m".
#' @noRd
format_eta <- function(seconds) {
  if (!is.finite(seconds)) {
    return("?")
  }
  s <- max(0, round(seconds))
  if (s < 60) {
    return(paste0(s, "s"))
  }
  if (s < 3600) {
    return(sprintf("%dm%02ds", s %/% 60, s %% 60))
  }
  sprintf("%dh%02dm", s %/% 3600, (s %% 3600) %/% 60)
}

#' `head`, then as many of `figures` as fit in `width` columns, in order.
#' @noRd
fit_line <- function(head, figures, width) {
  line <- head
  for (f in figures) {
    if (nchar(line) + 1 + nchar(f) > width) break
    line <- paste(line, f)
  }
  line
}

#' The bar's text for one step: ETA before any figure.
#' @noRd
progress_line <- function(event, epochs, width = progress_width(), prefix = "",
                          overall = NULL) {
  steps <- event$steps
  step <- event$step
  done <- floor(20 * step / steps)
  bar <- substr(paste0(strrep("=", done), if (done < 20) ">" else "", strrep(" ", 20)), 1, 20)
  eta <- if (step > 0) event$seconds / step * (steps - step) else NA
  head <- paste0(
    prefix, "epoch ", event$epoch, "/", epochs, " [", bar, "] ", step, "/", steps,
    " ETA ", format_eta(eta), if (!is.null(overall)) paste0(", all ", format_eta(overall)), " |"
  )
  figures <- paste("loss", fmt(event$loss))
  if (!is.null(event$reg)) figures <- c(figures, paste("reg", fmt(event$reg)))
  fit_line(head, figures, width)
}

#' A line through cli, taken as it is (braces in model names are no glue).
#' @noRd
inform <- function(text) cli::cli_inform("{text}")

progress_width <- function() min(cli::console_width(), 80) - 1

fmt <- function(x) trimws(formatC(x, digits = 4, format = "fg"))

#' "epoch 2/5: loss 0.41, accuracy 0.86, val_loss 0.45, ... (1.2 s)".
#' @noRd
epoch_line <- function(event, epochs = NULL) {
  skip <- c("event", "epoch", "seconds", "lr")
  figures <- unlist(event[setdiff(names(event), skip)])
  paste0(
    "epoch ", event$epoch, if (!is.null(epochs)) paste0("/", epochs), ": ",
    paste(names(figures), fmt(figures), collapse = ", "),
    " (", format(round(event$seconds, 1), nsmall = 1), " s)"
  )
}

#' The function the core's ProgressEvents callback calls: a cli bar per epoch, owned
#' by `envir` (the caller's frame, so cli closes it when the caller returns, even on
#' an error). `model` = list(index, count, label, start, done, total) adds "model k
#' of n" and an overall ETA (rotation_benchmark()).
#' @noRd
cli_fit_display <- function(envir, model = NULL) {
  id <- NULL
  epochs <- 1
  close_bar <- function() {
    if (!is.null(id)) cli::cli_progress_done(id = id, .envir = envir)
    id <<- NULL
  }
  function(event) {
    event <- as_r_value(event)
    e <- event[["event"]]
    if (identical(e, "start")) {
      epochs <<- event$epochs
      if (!is.null(model)) model$start_fit(event$epochs * event$steps)
    } else if (identical(e, "step")) {
      prefix <- if (is.null(model)) "" else model$prefix()
      overall <- if (is.null(model)) NULL else model$eta(event)
      line <- progress_line(event, epochs, prefix = prefix, overall = overall)
      if (is.null(id)) {
        id <<- cli::cli_progress_bar(
          total = event$steps, clear = TRUE, auto_terminate = FALSE, .envir = envir,
          format = "{cli::pb_extra$line}", extra = list(line = line)
        )
      }
      cli::cli_progress_update(id = id, set = event$step, extra = list(line = line),
        .envir = envir)
    } else if (identical(e, "epoch")) {
      close_bar() # the bar goes before the epoch's line: never drawn again
      prefix <- if (is.null(model)) "" else model$prefix()
      inform(paste0(prefix, epoch_line(event, epochs)))
    } else if (identical(e, "end")) {
      close_bar()
    }
    NULL
  }
}

#' The model counter of rotation_benchmark()'s display: "model k/n label", and an
#' overall ETA from the steps done so far in all models (every model trains on the
#' same data with the same batch size and epochs).
#' @noRd
benchmark_counter <- function() {
  self <- new.env()
  self$index <- 0
  self$count <- 1
  self$label <- ""
  self$started <- Sys.time()
  self$steps <- NA # steps of one model's training
  self$next_model <- function(label, index, count) {
    self$label <- label
    self$index <- index
    self$count <- count
  }
  self$start_fit <- function(total) self$steps <- total
  self$prefix <- function() paste0("model ", self$index, "/", self$count, " ")
  self$eta <- function(event) {
    done <- (self$index - 1) * self$steps + (event$epoch - 1) * event$steps + event$step
    total <- self$count * self$steps
    elapsed <- as.numeric(difftime(Sys.time(), self$started, units = "secs"))
    if (is.na(done) || done <= 0) NA else elapsed / done * (total - done)
  }
  self
}
