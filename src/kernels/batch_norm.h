// BatchNorm kernels over channels: x is viewed as (B, C, L), L the product of the spatial dims.
#pragma once

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// x (B,C,L) contiguous, w, b (C) contiguous or undefined -> out (B,C,L); mean, var, rstd (C).
/// training: mean and biased var are computed from x; otherwise mean, var are inputs (the
/// running stats, contiguous). rstd = 1 / sqrt(var + eps) is always written.
using BatchNormFn = void(const Tensor& x, const Tensor& w, const Tensor& b, bool training,
                         int64_t B, int64_t C, int64_t L, double eps, Tensor& out, Tensor& mean,
                         Tensor& var, Tensor& rstd);
/// dout, x (B,C,L), mean, rstd (C), w (C) or undefined -> dx (B,C,L) when defined; dw, db (C)
/// when defined (all contiguous, outputs overwritten). training selects the batch-statistics
/// formula for dx; otherwise dx = dout * w * rstd.
using BatchNormBackwardFn = void(const Tensor& dout, const Tensor& x, const Tensor& mean,
                                 const Tensor& rstd, const Tensor& w, bool training, int64_t B,
                                 int64_t C, int64_t L, Tensor& dx, Tensor& dw, Tensor& db);

MOXING_DECLARE_KERNEL(batch_norm_forward, BatchNormFn);
MOXING_DECLARE_KERNEL(batch_norm_backward, BatchNormBackwardFn);

}  // namespace moxing::kernels
