// Dropout as a function: a random keep-mask from moxing::rand, a composite of existing ops.
#pragma once

#include "moxing/core/rng.h"
#include "moxing/core/tensor.h"

namespace moxing {

/// Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1-p)
/// when training; x itself otherwise (or when p == 0). gen defaults to default_generator().
/// Matches torch.nn.functional.dropout in distribution (not in the random stream).
Tensor dropout(const Tensor& x, double p, bool training = true, Generator* gen = nullptr);

}  // namespace moxing
