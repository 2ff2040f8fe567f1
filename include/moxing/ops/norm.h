// Normalization layers as functions. layer_norm is a fused primitive whose forward saves the
// row mean and rstd for a fused backward (llm.c's layernorm_forward / layernorm_backward).
#pragma once

#include "moxing/core/tensor.h"

namespace moxing {

/// (x - mean) / sqrt(var + eps) * weight + bias over the trailing normalized_shape dims
/// (biased variance); weight and bias (normalized_shape) are each optional.
/// Matches torch.nn.functional.layer_norm.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

}  // namespace moxing
