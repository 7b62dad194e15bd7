# make demo: train a small CNN with the equivariance regularizer, from R, and watch
# its rotation-equivariance error fall.
library(equivariance)

torch <- reticulate::import("torch")
nn <- torch$nn
invisible(torch$manual_seed(0L))

model <- nn$Sequential(
  nn$Conv2d(1L, 8L, 3L, padding = 1L), nn$SiLU(), nn$MaxPool2d(2L),
  nn$Conv2d(8L, 16L, 3L, padding = 1L), nn$SiLU(), nn$AdaptiveMaxPool2d(1L),
  nn$Flatten(), nn$Linear(16L, 10L)
)
rotations <- lapply(1:3, function(k) list(transform_rot90(k), 0, 1))
reg <- equivariance_regularizer(model, c(1, 28, 28), rotations, n = 32, num_funcs = 3)
print(reg)

x <- torch$rand(256L, 1L, 28L, 28L)
y <- torch$randint(0L, 10L, list(256L))
opt <- torch$optim$Adam(model$parameters(), lr = 1e-2)
probe <- array(runif(64 * 28 * 28), c(64, 1, 28, 28))
for (step in 0:60) {
  opt$zero_grad()
  loss <- nn$functional$cross_entropy(model(x), y) + reg()
  loss$backward()
  opt$step()
  if (step %% 20 == 0) {
    err <- equivariance_errors(reg, probe)
    cat(sprintf("step %3d  loss %.4f  mean rotation error %.5f\n", step, loss$item(), mean(err$error)))
  }
}
