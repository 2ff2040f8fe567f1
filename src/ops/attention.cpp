// scaled_dot_product_attention written with matmul, masked_fill / add, softmax and dropout;
// each of them records its own backward. It materializes the (B,NH,T,S) scores.
#include "moxing/ops/attention.h"

#include <cmath>
#include <limits>

#include "moxing/ops/dropout.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/linalg.h"
#include "moxing/ops/shape.h"
#include "moxing/ops/softmax.h"

namespace moxing {

// y = softmax(q k^T * scale + mask) v; a bool mask puts -inf where it is false
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& attn_mask, double dropout_p, bool is_causal,
                                    std::optional<double> scale, Generator* gen) {
  const char* op = "scaled_dot_product_attention";
  MOXING_CHECK(q.defined() && k.defined() && v.defined(), "{}: undefined q, k or v", op);
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
  double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(-1))));
  int64_t T = q.size(-2), S = k.size(-2);

  Tensor scores = mul(matmul(q, k.transpose(-2, -1)), s);  // (B,NH,T,S)
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  if (is_causal) {
    Tensor t = arange(T).reshape({T, 1});
    Tensor j = arange(S).reshape({1, S});
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

}  // namespace moxing
