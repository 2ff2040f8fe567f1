// Random fill kernels: element i uses Philox block (first_block + i / 4) of the stream, so
// values depend only on the seed, the stream offset and i.
#pragma once

#include "kernels/registry.h"
#include "moxing/core/rng.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// out contiguous; uniform: a + (b - a) u; normal: a + b z
using RandomFn = void(Tensor& out, const Generator& gen, uint64_t first_block, double a, double b);
MOXING_DECLARE_KERNEL(uniform_fill, RandomFn);
MOXING_DECLARE_KERNEL(normal_fill, RandomFn);

}  // namespace moxing::kernels
