// MultiheadAttention (torch.nn.MultiheadAttention): packed q/k/v input projection, attention
// per head, output projection. Not the kdim/vdim != embed_dim variant, add_bias_kv or
// add_zero_attn.
#pragma once

#include <memory>

#include "moxing/core/rng.h"
#include "moxing/nn/layers.h"
#include "moxing/nn/module.h"

namespace moxing::nn {

/// What MultiheadAttention::forward returns; weights is undefined unless asked for.
struct AttentionOutput {
  Tensor output;   // (T,B,C), or (B,T,C) when batch_first, or (T,C) for an unbatched query
  Tensor weights;  // (B,T,S) averaged over heads, or (B,NH,T,S); the batch dim is dropped
                   // for an unbatched query
};

/// out = concat_h(softmax(q_h k_h^T / sqrt(HS) + mask) v_h) W_o^T + b_o with
/// [q k v] = [query key value] projected by in_proj_weight (3C,C) and in_proj_bias (3C).
/// Parameters keep torch's names (in_proj_weight, in_proj_bias, out_proj.weight,
/// out_proj.bias) and initialization (xavier_uniform_ in_proj_weight, zero biases).
/// Matches torch.nn.MultiheadAttention.
class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, double dropout = 0.0, bool bias = true,
                     bool batch_first = false, Generator* gen = nullptr);

  /// query (T,B,C), key and value (S,B,C) ((B,T,C), (B,S,C) when batch_first; (T,C), (S,C)
  /// unbatched). key_padding_mask (B,S): bool true = ignore that key, or floating (added).
  /// attn_mask (T,S) or (B*NH,T,S): bool true = not allowed to attend, or floating (added).
  /// is_causal without attn_mask lets query t attend keys s <= t (with attn_mask it is a hint
  /// that attn_mask is that mask, as torch). need_weights also returns the attention weights
  /// (after dropout), averaged over heads when average_attn_weights. Without need_weights the
  /// attention runs through scaled_dot_product_attention.
  AttentionOutput forward(const Tensor& query, const Tensor& key, const Tensor& value,
                          const Tensor& key_padding_mask = Tensor(), bool need_weights = true,
                          const Tensor& attn_mask = Tensor(), bool average_attn_weights = true,
                          bool is_causal = false);

  std::string type_name() const override { return "MultiheadAttention"; }
  std::string extra_repr() const override;

  int64_t embed_dim, num_heads, head_dim;
  double dropout;
  bool batch_first;
  Generator* gen;
  Tensor in_proj_weight, in_proj_bias;  // (3C,C), (3C) or undefined
  Slot<UnaryModule> out_proj;           // C -> C, a Linear when built
};

}  // namespace moxing::nn
