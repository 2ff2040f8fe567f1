// Softmax kernels over the middle axis of a contiguous (O, R, I) tensor: R is the softmax dim.
// The op brings any dim to this form with a view; I == 1 is the last-dim fast path.
#pragma once

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// x, out contiguous (O, R, I); log selects log_softmax
using SoftmaxFn = void(const Tensor& x, int64_t O, int64_t R, int64_t I, bool log, Tensor& out);
/// g, y, dx contiguous (O, R, I); y is the forward output
///   softmax:     dx = y * (g - sum_R(g * y))
///   log_softmax: dx = g - exp(y) * sum_R(g)
using SoftmaxBackwardFn = void(const Tensor& g, const Tensor& y, int64_t O, int64_t R, int64_t I,
                               bool log, Tensor& dx);

MOXING_DECLARE_KERNEL(softmax_forward, SoftmaxFn);
MOXING_DECLARE_KERNEL(softmax_backward, SoftmaxBackwardFn);

}  // namespace moxing::kernels
