// What the decoder-only language models (GPT-2, Llama) share around their attention: the checks
// of a forward's ids against the context and the KV cache, and causal self-attention that
// writes the new keys and values into a preallocated cache and attends the cached positions,
// with grouped-query attention (fewer key/value heads than query heads).
#pragma once

#include <cstdint>
#include <optional>

#include "moxing/core/tensor.h"
#include "moxing/models/causal_lm.h"

namespace moxing::models {

/// What a model's forward takes: its name and context for messages, and the cache's layout.
struct LmInputSpec {
  const char* model;        // "GPT"
  const char* context_key;  // the config key of the context: "n_positions"
  int64_t context;
  int64_t n_layer, kv_heads, head_size;
};

/// ids (B,T), i64 or i32, T > 0, past + T within the context and, with a cache, the cache made
/// for this model and batch with room for them; errors name the model. Returns ids as i64.
Tensor check_lm_input(const Tensor& ids, const KVCache* cache, const LmInputSpec& spec);

/// Causal attention of q (B,NH,T,HS) with k, v (B,NKV,T,HS) of the same positions; NKV divides
/// NH (each key/value head serves NH/NKV query heads). Without a cache the positions attend each
/// other; with one, k and v are written at [past, past + T) of k_cache and v_cache
/// (B,NKV,S_max,HS) and query t (at position past + t) attends the keys at [0, past + t].
/// Returns (B,NH,T,HS).
Tensor causal_self_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor* k_cache,
                             Tensor* v_cache, int64_t past, double dropout_p,
                             std::optional<double> scale = std::nullopt);

}  // namespace moxing::models
