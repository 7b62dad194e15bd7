# The history fit_model() returns: converted from the core's History, printed,
# plotted (one panel per figure) and turned into a data.frame.

#' The core's History -> an `equivariance_history` (a list of data frames).
#' @noRd
as_history <- function(history) {
  h <- history$as_dict()
  steps <- h$steps
  epochs <- lapply(h$epochs, function(col) as.numeric(unlist(col)))
  epochs$epoch <- as.integer(epochs$epoch)
  structure(
    list(
      steps = data.frame(
        step = as.integer(unlist(steps$step)), epoch = as.integer(unlist(steps$epoch)),
        loss = as.numeric(unlist(steps$loss)), reg = as.numeric(unlist(steps$reg))
      ),
      epochs = as.data.frame(epochs, optional = TRUE),
      best_epoch = if (is.null(h$best_epoch)) NA_integer_ else as.integer(h$best_epoch),
      monitor = if (is.null(h$monitor)) NA_character_ else as.character(h$monitor),
      restored = isTRUE(h$restored),
      stopped_early = isTRUE(h$stopped_early),
      reused_outputs = isTRUE(h$reused_outputs)
    ),
    class = "equivariance_history"
  )
}

#' @export
as.data.frame.equivariance_history <- function(x, row.names = NULL, optional = FALSE, ...) {
  e <- x$epochs
  cols <- setdiff(names(e), c("seconds", "lr"))
  if (!any(x$steps$reg != 0)) cols <- setdiff(cols, "reg")
  if ("lr" %in% names(e) && length(unique(e$lr)) > 1) cols <- c(cols, "lr")
  out <- e[cols]
  if (!is.null(row.names)) rownames(out) <- row.names
  out
}

#' "best epoch 2 by val_loss (weights restored)", or "" without one.
#' @noRd
best_note <- function(x) {
  if (is.na(x$best_epoch)) {
    return("")
  }
  last <- nrow(x$epochs)
  kept <- if (x$restored) {
    "weights restored"
  } else if (x$best_epoch == last) {
    "the last epoch"
  } else {
    paste0("not restored: the model has epoch ", last, "'s weights")
  }
  paste0("best epoch ", x$best_epoch, " by ", x$monitor, " (", kept, ")")
}

#' @export
print.equivariance_history <- function(x, ...) {
  notes <- c(
    paste0(nrow(x$steps), " steps, ", nrow(x$epochs), " epochs"),
    best_note(x), if (x$stopped_early) "stopped early"
  )
  cat("<equivariance_history> ", paste(notes[nzchar(notes)], collapse = "; "), "\n", sep = "")
  print(as.data.frame(x), row.names = FALSE, digits = 4)
  invisible(x)
}

#' Plot a training history
#'
#' One panel per figure over the epochs: the loss (training and validation), the
#' accuracy and every metric of `fit_model(metrics = )` (training and, with
#' validation data, validation), the regularizer's mean when there is one, and the
#' learning rate when it changed. Epochs are whole-number ticks; a dotted line marks
#' the best epoch.
#'
#' @param x A history returned by [fit_model()].
#' @param y Unused.
#' @param ... Passed to [graphics::plot()] for every panel.
#' @return `x`, invisibly.
#' @seealso [fit_model()]
#' @export
#' @examples
#' if (equivariance_available()) {
#'   train <- fashion_mnist("train", limit = 128, root = "subset")
#'   h <- fit_model(simple_cnn(), train, epochs = 2, batch_size = 32,
#'     validation_data = 0.25, metrics = "top_3", verbose = FALSE)
#'   plot(h)
#' }
plot.equivariance_history <- function(x, y, ...) {
  panels <- history_panels(x)
  old <- graphics::par(mfrow = panel_grid(length(panels)), mar = c(4, 4, 1.5, 1))
  on.exit(graphics::par(old), add = TRUE)
  e <- x$epochs
  for (name in names(panels)) {
    cols <- panels[[name]]
    values <- as.matrix(e[cols])
    graphics::matplot(e$epoch, values,
      type = "b", lty = c(1, 2)[seq_along(cols)], pch = c(19, 1)[seq_along(cols)],
      col = c("black", "firebrick")[seq_along(cols)], xaxt = "n", xlab = "epoch",
      ylab = name, xlim = range(e$epoch) + c(-0.2, 0.2), ...
    )
    graphics::axis(1, at = epoch_ticks(e$epoch))
    if (!is.na(x$best_epoch)) graphics::abline(v = x$best_epoch, lty = 3, col = "grey40")
    if (length(cols) > 1 && name == names(panels)[1]) { # one legend, on the loss
      graphics::legend("topright", c("training", "validation"),
        col = c("black", "firebrick"), lty = c(1, 2), pch = c(19, 1), bty = "n", cex = 0.8
      )
    }
  }
  invisible(x)
}

#' The panels of plot(history): name -> columns (training, then validation).
#' @noRd
history_panels <- function(x) {
  e <- x$epochs
  train <- setdiff(names(e), c("epoch", "seconds", "lr", "reg", grep("^val_", names(e), value = TRUE)))
  panels <- lapply(stats::setNames(train, train), function(n) {
    intersect(c(n, paste0("val_", n)), names(e))
  })
  if (any(x$steps$reg != 0)) panels$regularizer <- "reg"
  if ("lr" %in% names(e) && length(unique(e$lr)) > 1) panels$`learning rate` <- "lr"
  panels
}

#' Whole-number ticks for the epochs (at most about 8).
#' @noRd
epoch_ticks <- function(epochs) {
  ticks <- unique(round(pretty(range(epochs), n = min(8, length(epochs)))))
  ticks[ticks >= min(epochs) & ticks <= max(epochs)]
}

panel_grid <- function(n) if (n <= 3) c(1, n) else c(ceiling(n / 3), 3)
