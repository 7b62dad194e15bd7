library(testthat)
library(equivariance)

test_check("equivariance")
