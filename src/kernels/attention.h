// Fused scaled-dot-product attention kernels: one (b, h) head at a time, scores through GEMM,
// softmax in place, no (B,NH,T,S) intermediates besides the attention weights kept for backward
// and the dropout multipliers, which the op draws as dropout() does.
#pragma once

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// True when t (B,NH,R,C) can go to the kernels as it is: unit stride in the last dim and each
/// head's (R,C) matrix addressable by BLAS with a row stride (any strides for B and NH).
inline bool attention_layout_ok(const Tensor& t) {
  int64_t R = t.size(2), C = t.size(3);
  return (t.stride(3) == 1 || C == 1) && (R == 1 || t.stride(2) >= C);
}

/// q (B,NH,T,HS), k (B,NH,S,HS), v (B,NH,S,HSv), all attention_layout_ok; mask (B,NH,T,S)
/// of q's dtype with any strides (0 where broadcast) or undefined; drop (B,NH,T,S) contiguous
/// dropout multipliers (0 or 1/(1-p)) or undefined
/// -> out (B,NH,T,HSv) attention_layout_ok; att (B,NH,T,S) contiguous or undefined.
/// att = softmax(q k^T * scale + mask) with query t seeing keys s <= t when causal (no mask
/// then); out = (att * drop) v. att is written only when defined (backward needs it), before
/// dropout, and causal rows only up to the last key of their block of queries (zeros past t):
/// the backward reads no further.
using AttentionFn = void(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                         const Tensor& drop, bool causal, double scale, Tensor& out, Tensor& att);
/// dout like out, plus the forward's tensors -> dq, dk, dv like q, k, v (all overwritten):
///   dv = (att * drop)^T dout,  datt = drop * (dout v^T),  ds = att * (datt - rowsum(dout * out)),
///   dq = ds k * scale,  dk = ds^T q * scale   (drop = 1 when undefined)
using AttentionBackwardFn = void(const Tensor& dout, const Tensor& q, const Tensor& k,
                                 const Tensor& v, const Tensor& out, const Tensor& att,
                                 const Tensor& drop, bool causal, double scale, Tensor& dq,
                                 Tensor& dk, Tensor& dv);

MOXING_DECLARE_KERNEL(attention_forward, AttentionFn);
MOXING_DECLARE_KERNEL(attention_backward, AttentionBackwardFn);

}  // namespace moxing::kernels
