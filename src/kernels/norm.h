// LayerNorm kernels over rows: x is viewed as (N, C), C the product of the normalized dims.
#pragma once

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// x (N,C) contiguous, w, b (C) contiguous or undefined -> out (N,C); mean, rstd (N) saved
using LayerNormFn = void(const Tensor& x, const Tensor& w, const Tensor& b, int64_t N, int64_t C,
                         double eps, Tensor& out, Tensor& mean, Tensor& rstd);
/// dout, x (N,C), mean, rstd (N), w (C) or undefined -> dx (N,C); dw, db (C) are filled when
/// defined (all contiguous, outputs overwritten)
using LayerNormBackwardFn = void(const Tensor& dout, const Tensor& x, const Tensor& mean,
                                 const Tensor& rstd, const Tensor& w, int64_t N, int64_t C,
                                 Tensor& dx, Tensor& dw, Tensor& db);

MOXING_DECLARE_KERNEL(layer_norm_forward, LayerNormFn);
MOXING_DECLARE_KERNEL(layer_norm_backward, LayerNormBackwardFn);

}  // namespace moxing::kernels
