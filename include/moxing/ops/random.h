// Random tensors from a Philox stream: the same seed gives the same values on any thread count.
// Each takes TensorOptions (dtype, device; default_device() when none). On meta they make the
// shape only and draw nothing: the generator does not advance.
#pragma once

#include "moxing/core/rng.h"
#include "moxing/core/tensor.h"

namespace moxing {

/// Uniform in [low, high) (default [0, 1)); gen defaults to default_generator().
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options = {},
               Generator* gen = nullptr);
/// Normal with mean 0 and std 1 (Box-Muller).
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);
Tensor normal(const Shape& shape, double mean, double std, TensorOptions options = {},
              Generator* gen = nullptr);
/// Integers in [low, high).
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options = DType::i64,
               Generator* gen = nullptr);
/// A random permutation of 0..n-1 (i64) on default_device().
Tensor randperm(int64_t n, Generator* gen = nullptr);

}  // namespace moxing
