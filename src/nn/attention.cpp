// MultiheadAttention: checks, projections, the merged additive mask, and the two attention
// paths (scaled_dot_product_attention, or explicit when the weights are returned).
#include "moxing/nn/attention.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "moxing/autograd/node.h"
#include "moxing/nn/init.h"
#include "moxing/ops/attention.h"
#include "moxing/ops/dropout.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/linalg.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"
#include "moxing/ops/softmax.h"

namespace moxing::nn {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// bool true -> -inf, false -> 0; a floating mask is converted to dtype
Tensor additive(const Tensor& mask, DType dtype) {
  if (mask.dtype() == DType::boolean) return masked_fill(zeros(mask.shape(), dtype), mask, kNegInf);
  MOXING_CHECK(is_floating(mask.dtype()),
               "MultiheadAttention: masks must be bool or floating, got {} of shape {}",
               dtype_name(mask.dtype()), shape_str(mask.shape()));
  return mask.to(dtype);
}

// (B,T,C) -> (B,NH,T,HS)
Tensor split_heads(const Tensor& x, int64_t NH) {
  int64_t B = x.size(0), T = x.size(1), HS = x.size(2) / NH;
  return x.reshape({B, T, NH, HS}).transpose(1, 2);
}

}  // namespace

MultiheadAttention::MultiheadAttention(int64_t embed_dim, int64_t num_heads, double dropout,
                                       bool bias, bool batch_first, Generator* gen)
    : embed_dim(embed_dim),
      num_heads(num_heads),
      head_dim(num_heads > 0 ? embed_dim / num_heads : 0),
      dropout(dropout),
      batch_first(batch_first),
      gen(gen) {
  MOXING_CHECK(embed_dim > 0 && num_heads > 0 && embed_dim % num_heads == 0,
               "MultiheadAttention: embed_dim {} must be a positive multiple of num_heads {}",
               embed_dim, num_heads);
  MOXING_CHECK(dropout >= 0.0 && dropout < 1.0,
               "MultiheadAttention: dropout must be in [0, 1), got {}", dropout);
  in_proj_weight = register_parameter("in_proj_weight", empty({3 * embed_dim, embed_dim}));
  if (bias) in_proj_bias = register_parameter("in_proj_bias", zeros({3 * embed_dim}));
  auto proj = std::make_shared<Linear>(embed_dim, embed_dim, bias, gen);
  out_proj = register_slot<UnaryModule>("out_proj", proj);
  init::xavier_uniform_(in_proj_weight, 1.0, gen);
  if (bias) init::zeros_(proj->bias);
}

AttentionOutput MultiheadAttention::forward(const Tensor& query, const Tensor& key,
                                            const Tensor& value, const Tensor& key_padding_mask,
                                            bool need_weights, const Tensor& attn_mask,
                                            bool average_attn_weights, bool is_causal) {
  MOXING_CHECK(query.defined() && key.defined() && value.defined(),
               "MultiheadAttention: query, key and value must be defined");
  bool batched = query.dim() == 3;
  MOXING_CHECK(
      (query.dim() == 2 || batched) && key.dim() == query.dim() && value.dim() == query.dim(),
      "MultiheadAttention: query {}, key {} and value {} must all be 3-d (batched) or "
      "all 2-d (unbatched)",
      shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()));
  MOXING_CHECK(
      query.size(-1) == embed_dim && key.size(-1) == embed_dim && value.size(-1) == embed_dim,
      "MultiheadAttention: query {}, key {} and value {} must end in embed_dim {}",
      shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()), embed_dim);
  // everything below works on batch-first (B,T,C) / (B,S,C)
  auto batch_first_view = [&](const Tensor& x) {
    if (!batched) return x.unsqueeze(0);
    return batch_first ? x : x.transpose(0, 1);
  };
  Tensor q_in = batch_first_view(query), k_in = batch_first_view(key),
         v_in = batch_first_view(value);
  int64_t B = q_in.size(0), T = q_in.size(1), S = k_in.size(1), C = embed_dim, NH = num_heads;
  MOXING_CHECK(k_in.size(0) == B && v_in.size(0) == B && v_in.size(1) == S,
               "MultiheadAttention: query {}, key {} and value {} disagree on the batch or on "
               "the key length (batch_first={})",
               shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()),
               batch_first);

  // one (3C) projection for self-attention, three slices of it otherwise
  Tensor q, k, v;
  bool self_attention = query.impl() == key.impl() && key.impl() == value.impl();
  if (self_attention) {
    std::vector<Tensor> qkv = linear(q_in, in_proj_weight, in_proj_bias).chunk(3, -1);
    q = qkv[0], k = qkv[1], v = qkv[2];
  } else {
    auto part = [&](const Tensor& x, int64_t i) {
      Tensor b = in_proj_bias.defined() ? in_proj_bias.narrow(0, i * C, C) : Tensor();
      return linear(x, in_proj_weight.narrow(0, i * C, C), b);
    };
    q = part(q_in, 0), k = part(k_in, 1), v = part(v_in, 2);
  }
  q = split_heads(q, NH), k = split_heads(k, NH), v = split_heads(v, NH);

  // one additive mask broadcasting to (B,NH,T,S)
  Tensor mask;
  if (attn_mask.defined()) {
    bool ok = (attn_mask.dim() == 2 && attn_mask.shape() == Shape{T, S}) ||
              (attn_mask.dim() == 3 && attn_mask.shape() == Shape{B * NH, T, S});
    MOXING_CHECK(ok,
                 "MultiheadAttention: attn_mask of shape {} must be (T,S) = [{}, {}] or "
                 "(B*NH,T,S) = [{}, {}, {}]",
                 shape_str(attn_mask.shape()), T, S, B * NH, T, S);
    mask = additive(attn_mask, q.dtype());
    if (mask.dim() == 3) mask = mask.reshape({B, NH, T, S});
  } else if (is_causal) {
    mask = additive(gt(triu(ones({T, S}, q.dtype()), 1), 0.5), q.dtype());
  }
  if (key_padding_mask.defined()) {
    Shape want = batched ? Shape{B, S} : Shape{S};
    MOXING_CHECK(key_padding_mask.shape() == want,
                 "MultiheadAttention: key_padding_mask of shape {} must be {}",
                 shape_str(key_padding_mask.shape()), shape_str(want));
    Tensor kpm = additive(key_padding_mask, q.dtype()).reshape({B, 1, 1, S});
    mask = mask.defined() ? add(mask, kpm) : kpm;
  }

  double p = is_training() ? dropout : 0.0;
  Tensor out, weights;
  if (!need_weights) {
    out = scaled_dot_product_attention(q, k, v, mask, p, false, std::nullopt, gen);
  } else {
    // (B,NH,T,HS) @ (B,NH,HS,S) -> (B,NH,T,S)
    Tensor scores =
        matmul(mul(q, 1.0 / std::sqrt(static_cast<double>(head_dim))), k.transpose(-2, -1));
    if (mask.defined()) scores = add(scores, mask);
    Tensor att = dropout > 0.0 ? moxing::dropout(softmax(scores, -1), p, is_training(), gen)
                               : softmax(scores, -1);
    out = matmul(att, v);
    weights = average_attn_weights ? mean(att, {1}) : att;
    if (!batched) weights = weights.squeeze(0);
  }
  // (B,NH,T,HS) -> (B,T,C) -> projection -> the caller's layout
  out = out_proj->forward(out.transpose(1, 2).reshape({B, T, C}));
  if (!batched) {
    out = out.squeeze(0);
  } else if (!batch_first) {
    out = out.transpose(0, 1);
  }
  return {out, weights};
}

std::string MultiheadAttention::extra_repr() const {
  return fmt::format("embed_dim={}, num_heads={}, dropout={}, batch_first={}", embed_dim, num_heads,
                     dropout, batch_first ? "True" : "False");
}

}  // namespace moxing::nn
