// Embedding kernels: gather rows of a (V,C) table, and add gradients back into the rows.
#pragma once

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// weight (V,C), indices (N) i64, both contiguous -> out (N,C) contiguous: out[n] =
/// weight[indices[n]]. Fails on an index outside [0, V).
using EmbeddingFn = void(const Tensor& weight, const Tensor& indices, int64_t N, int64_t V,
                         int64_t C, Tensor& out);
/// g (N,C), indices (N) -> dweight (V,C), all contiguous, dweight already zeroed:
/// dweight[indices[n]] += g[n] for every index != padding_idx, in order of n
using EmbeddingBackwardFn = void(const Tensor& g, const Tensor& indices, int64_t N, int64_t V,
                                 int64_t C, int64_t padding_idx, Tensor& dweight);

MOXING_DECLARE_KERNEL(embedding_forward, EmbeddingFn);
MOXING_DECLARE_KERNEL(embedding_backward, EmbeddingBackwardFn);

}  // namespace moxing::kernels
