# make demo: the rotated Fashion-MNIST benchmark, run from R.
#
# Trains SimpleCNN, SimpleCNN with augmentation, SimpleCNN with augmentation and the
# equivariance regularizer, EqCNN, C4CNN and
# the escnn C4 classifier on the full Fashion-MNIST training set (Debian's
# dataset-fashion-mnist) with one recipe (Adam, lr 1e-3, batch 128, seed 0), tests
# each on the test set turned by 0, 90, 180 and 270 degrees, prints the table and
# writes it as CSV, with a PNG plot of accuracy against rotation.
#
# Settings through the environment: EQUIVARIANCE_DEMO_OUT (output folder, default
# "out") and EQUIVARIANCE_DEMO_EPOCHS (default 2).
library(equivariance)

out <- Sys.getenv("EQUIVARIANCE_DEMO_OUT", "out")
epochs <- as.numeric(Sys.getenv("EQUIVARIANCE_DEMO_EPOCHS", "2"))
dir.create(out, showWarnings = FALSE, recursive = TRUE)
csv <- file.path(out, "rotation_benchmark.csv")
png <- file.path(out, "rotation_benchmark.png")

started <- Sys.time()
result <- rotation_benchmark(epochs = epochs, csv = csv, png = png)
minutes <- as.numeric(difftime(Sys.time(), started, units = "mins"))

# rotation_benchmark() has printed the table (verbose = TRUE)
cat(sprintf("\nTable: %s\nPlot:  %s\nTotal: %.1f minutes\n", csv, png, minutes))
