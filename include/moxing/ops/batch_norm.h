// Batch normalization as a function: per-channel statistics over the batch and spatial dims.
// A fused primitive whose forward saves the channel mean and rstd for a fused backward; the
// running statistics are buffers updated in place, never differentiated.
#pragma once

#include "moxing/core/tensor.h"

namespace moxing {

/// y = (x - mean) / sqrt(var + eps) * weight + bias per channel, x (B,C), (B,C,L) or
/// (B,C,H,W); weight, bias, running_mean, running_var (C), each optional. training: mean and
/// biased var come from the batch, and defined running stats are updated in place as
/// running = (1 - momentum) running + momentum stat (unbiased var). Otherwise the running stats
/// (then required) are used. Matches torch.nn.functional.batch_norm.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  bool training = false, double momentum = 0.1, double eps = 1e-5);

}  // namespace moxing
