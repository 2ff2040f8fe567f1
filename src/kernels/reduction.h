// Reduction kernels over the middle axis of a contiguous (O, R, I) tensor -> (O, I).
// Any reduction is brought to this form by the op (dims made adjacent, then a view).
#pragma once

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// x contiguous, viewed as (O, R, I); out contiguous (O, I)
using ReduceFn = void(const Tensor& x, int64_t O, int64_t R, int64_t I, Tensor& out);
/// values (O, I) like x, indices (O, I) i64: first index of the extreme value
using ReduceIndexFn = void(const Tensor& x, int64_t O, int64_t R, int64_t I, Tensor& values,
                           Tensor& indices);

MOXING_DECLARE_KERNEL(sum_forward, ReduceFn);
MOXING_DECLARE_KERNEL(max_forward, ReduceIndexFn);
MOXING_DECLARE_KERNEL(min_forward, ReduceIndexFn);

}  // namespace moxing::kernels
