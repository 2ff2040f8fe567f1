// scaled_dot_product_attention: the fused kernels (src/kernels/cpu/attention.cpp) for 3-D/4-D
// q, k, v with equal batch and head dims, causal or a constant mask, dropout_p < 1; otherwise the
// composite of matmul, masked_fill / add, softmax and dropout, which records the backward of
// each of its ops and stays the reference the fused kernels are tested against.
#include "moxing/ops/attention.h"

#include <climits>
#include <cmath>
#include <limits>

#include "kernels/attention.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/dropout.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/linalg.h"
#include "moxing/ops/random.h"
#include "moxing/ops/shape.h"
#include "moxing/ops/softmax.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(attention_forward, AttentionFn)
MOXING_DEFINE_KERNEL(attention_backward, AttentionBackwardFn)
}  // namespace kernels

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

void check_arguments(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& attn_mask,
                     double dropout_p, bool is_causal) {
  const char* op = kOp;
  MOXING_CHECK(q.defined() && k.defined() && v.defined(), "{}: undefined q, k or v", op);
  check_same_device(op, {q, k, v, attn_mask});
  MOXING_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2,
               "{}: q, k, v need at least 2 dims (..., T, HS), got {}, {}, {}", op,
               shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  MOXING_CHECK(is_floating(q.dtype()) && q.dtype() == k.dtype() && q.dtype() == v.dtype(),
               "{}: q, k, v must share one floating dtype, got {}, {}, {}", op,
               dtype_name(q.dtype()), dtype_name(k.dtype()), dtype_name(v.dtype()));
  MOXING_CHECK(q.size(-1) == k.size(-1), "{}: q {} and k {} differ in head size (last dim)", op,
               shape_str(q.shape()), shape_str(k.shape()));
  MOXING_CHECK(k.size(-2) == v.size(-2), "{}: k {} and v {} differ in sequence length (dim -2)", op,
               shape_str(k.shape()), shape_str(v.shape()));
  MOXING_CHECK(!(is_causal && attn_mask.defined()),
               "{}: pass either attn_mask or is_causal, not both", op);
  MOXING_CHECK(dropout_p >= 0.0 && dropout_p <= 1.0, "{}: dropout_p must be in [0, 1], got {}", op,
               dropout_p);
}

// True when the fused kernels serve this call: q (B,NH,T,HS), k (B,NH,S,HS), v (B,NH,S,HSv)
// or the same without NH, nothing to broadcast, dropout_p < 1, and no mask or (4-D only) a
// bool or constant float mask that broadcasts to (B,NH,T,S).
bool fused_applies(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& attn_mask,
                   double dropout_p) {
  if (dropout_p >= 1.0) return false;
  const int64_t nd = q.dim();
  if ((nd != 3 && nd != 4) || k.dim() != nd || v.dim() != nd) return false;
  for (int64_t d = 0; d < nd - 2; ++d) {
    if (k.size(d) != q.size(d) || v.size(d) != q.size(d)) return false;
  }
  for (const Tensor* t : {&q, &k, &v}) {
    for (int64_t s : t->shape()) {
      if (s == 0 || s > INT_MAX / 2) return false;
    }
  }
  if (q.size(-2) * k.size(-2) > INT_MAX / 2) return false;
  if (attn_mask.defined()) {
    if (nd != 4 || attn_mask.dim() > 4) return false;
    if (attn_mask.dtype() != DType::boolean &&
        (attn_mask.dtype() != q.dtype() || autograd::any_requires_grad({attn_mask}))) {
      return false;
    }
    const Shape want = {q.size(0), q.size(1), q.size(2), k.size(2)};
    for (int64_t d = 1; d <= attn_mask.dim(); ++d) {
      int64_t have = attn_mask.size(-d);
      if (have != 1 && have != want[static_cast<size_t>(4 - d)]) return false;
    }
  }
  return kernels::attention_forward().has(q.device().type, q.dtype()) &&
         kernels::attention_backward().has(q.device().type, q.dtype());
}

// attn_mask as an additive (B,NH,T,S) view of q's dtype: a bool mask becomes 0 where true and
// -inf where false; broadcast dims get stride 0
Tensor additive_mask(const Tensor& attn_mask, const Shape& shape, DType dtype) {
  NoGradGuard no_grad;
  Tensor m = attn_mask.detach();
  if (m.dtype() == DType::boolean) {
    m = masked_fill(zeros(m.shape(), m.options().dtype(dtype)), logical_not(m),
                    -std::numeric_limits<double>::infinity());
  }
  return m.expand(shape);
}

// keep / (1 - p) with keep = (u >= p), u uniform: the same draws and values as dropout()
// makes for the attention weights, so the fused and composite paths agree for one seed
Tensor dropout_multipliers(const Shape& shape, DType dtype, Device device, double p,
                           Generator* gen) {
  NoGradGuard no_grad;
  return mul(ge(rand(shape, TensorOptions(dtype).device(device), gen), p).to(dtype),
             1.0 / (1.0 - p));
}

Tensor layout_ok_or_copy(const Tensor& t) {
  return kernels::attention_layout_ok(t) ? t : contiguous(t);
}

// An empty (B,NH,R,C) tensor. When like is a heads-transposed view of a (B,R,NH,·) tensor
// (q, k, v split from one projection are), the buffer is (B,R,NH,C) viewed the same way, so
// that y.transpose(1, 2).contiguous() after attention, and the gradients flowing back into
// the projection, need no copy. As torch's CPU flash attention lays out its output.
Tensor empty_heads_like(const Tensor& like, int64_t C) {
  const int64_t B = like.size(0), NH = like.size(1), R = like.size(2);
  if (like.stride(2) > like.stride(1)) return empty({B, R, NH, C}, like.options()).transpose(1, 2);
  return empty({B, NH, R, C}, like.options());
}

// q (B,NH,T,HS), k (B,NH,S,HS), v (B,NH,S,HSv), attn_mask broadcasting to (B,NH,T,S) or
// undefined -> y (B,NH,T,HSv); att (B,NH,T,S) and the dropout multipliers saved for backward
// when a gradient is needed
Tensor sdpa_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& attn_mask,
                  double dropout_p, bool causal, double scale, Generator* gen) {
  if (q.dim() == 3) {
    return sdpa_fused(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), attn_mask, dropout_p, causal,
                      scale, gen)
        .squeeze(1);
  }
  const int64_t B = q.size(0), NH = q.size(1), T = q.size(2), S = k.size(2);
  Tensor qd = layout_ok_or_copy(q.detach()), kd = layout_ok_or_copy(k.detach());
  Tensor vd = layout_ok_or_copy(v.detach());
  Tensor mask = attn_mask.defined() ? additive_mask(attn_mask, {B, NH, T, S}, q.dtype()) : Tensor();
  Tensor drop = dropout_p > 0.0
                    ? dropout_multipliers({B, NH, T, S}, q.dtype(), q.device(), dropout_p, gen)
                    : Tensor();
  Tensor out = empty_heads_like(q, v.size(3));
  const bool grad = autograd::any_requires_grad({q, k, v});
  Tensor att = grad ? empty({B, NH, T, S}, q.options()) : Tensor();
  kernels::attention_forward().get(q.device(), q.dtype())(qd, kd, vd, mask, drop, causal, scale,
                                                          out, att);
  if (grad) {
    autograd::SavedTensor sq(qd, kOp), sk(kd, kOp), sv(vd, kOp), so(out, kOp);
    autograd::record(kOp, {out}, {q, k, v},
                     [sq, sk, sv, so, att, drop, causal, scale](const std::vector<Tensor>& g) {
                       Tensor q = sq.get(), k = sk.get(), v = sv.get(), out = so.get();
                       Tensor dout = layout_ok_or_copy(g[0]);
                       Tensor dq = empty_heads_like(q, q.size(3));
                       Tensor dk = empty_heads_like(k, k.size(3));
                       Tensor dv = empty_heads_like(v, v.size(3));
                       kernels::attention_backward().get(q.device(), q.dtype())(
                           dout, q, k, v, out, att, drop, causal, scale, dq, dk, dv);
                       return std::vector<Tensor>{dq, dk, dv};
                     });
  }
  return out;
}

}  // namespace

// y = softmax(q k^T * scale + mask) v; a bool mask puts -inf where it is false
Tensor scaled_dot_product_attention_math(const Tensor& q, const Tensor& k, const Tensor& v,
                                         const Tensor& attn_mask, double dropout_p, bool is_causal,
                                         std::optional<double> scale, Generator* gen) {
  const char* op = kOp;
  check_arguments(q, k, v, attn_mask, dropout_p, is_causal);
  double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(-1))));
  int64_t T = q.size(-2), S = k.size(-2);

  Tensor scores = mul(matmul(q, k.transpose(-2, -1)), s);  // (B,NH,T,S)
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  if (is_causal) {
    Tensor t = arange(T, q.options().dtype(DType::i64)).reshape({T, 1});
    Tensor j = arange(S, q.options().dtype(DType::i64)).reshape({1, S});
    scores = masked_fill(scores, gt(j, t), kNegInf);
  } else if (attn_mask.defined()) {
    Shape b = broadcast_shapes(scores.shape(), attn_mask.shape(), op);
    MOXING_CHECK(b == scores.shape(), "{}: attn_mask of shape {} does not broadcast to {}", op,
                 shape_str(attn_mask.shape()), shape_str(scores.shape()));
    if (attn_mask.dtype() == DType::boolean) {
      scores = masked_fill(scores, logical_not(attn_mask), kNegInf);
    } else {
      MOXING_CHECK(attn_mask.dtype() == q.dtype(),
                   "{}: attn_mask must be bool or of q's dtype {}, got {}", op,
                   dtype_name(q.dtype()), dtype_name(attn_mask.dtype()));
      scores = add(scores, attn_mask);
    }
  }
  Tensor attn = softmax(scores, -1);
  if (dropout_p > 0.0) attn = dropout(attn, dropout_p, true, gen);
  return matmul(attn, v);
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& attn_mask, double dropout_p, bool is_causal,
                                    std::optional<double> scale, Generator* gen) {
  check_arguments(q, k, v, attn_mask, dropout_p, is_causal);
  if (!fused_applies(q, k, v, attn_mask, dropout_p)) {
    return scaled_dot_product_attention_math(q, k, v, attn_mask, dropout_p, is_causal, scale, gen);
  }
  double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(-1))));
  return sdpa_fused(q, k, v, attn_mask, dropout_p, is_causal, s, gen);
}

}  // namespace moxing
