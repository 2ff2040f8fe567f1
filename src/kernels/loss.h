// The nll_loss kernels: pick the log-probability of each target class, and scatter its
// gradient back. Private to the loss family.
#pragma once

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// logp (B,C,D) contiguous, target (B,D) i64 contiguous -> loss (B,D) contiguous:
/// -logp[b, target[b,d], d], 0 where target == ignore_index. Fails on a target outside [0, C).
using NllLossFn = void(const Tensor& logp, const Tensor& target, int64_t B, int64_t C, int64_t D,
                       int64_t ignore_index, Tensor& loss);
/// g (B,D) contiguous, target (B,D) -> dlogp (B,C,D) contiguous, already zeroed:
/// dlogp[b, target[b,d], d] = -g[b,d] for every target != ignore_index
using NllLossBackwardFn = void(const Tensor& g, const Tensor& target, int64_t B, int64_t C,
                               int64_t D, int64_t ignore_index, Tensor& dlogp);

MOXING_DECLARE_KERNEL(nll_loss_forward, NllLossFn);
MOXING_DECLARE_KERNEL(nll_loss_backward, NllLossBackwardFn);

}  // namespace moxing::kernels
