// Llama: transformers' LlamaForCausalLM layer for layer, with its parameter names, so that a
// Hugging Face folder (config.json + model.safetensors) loads here and ours loads there:
// RMSNorm before attention and MLP, rotary position embeddings (transformers' rotate-half
// layout), grouped-query attention (num_key_value_heads key/value heads shared by the query
// heads), a SwiGLU MLP, and an output head tied to the embedding or not. The family "llama"
// registers it; it trains like GPT through the causal-lm task. Not yet: RoPE scaling
// (rope_scaling must be null), sliding windows.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "moxing/core/rng.h"
#include "moxing/models/causal_lm.h"
#include "moxing/nn/containers.h"
#include "moxing/nn/layers.h"
#include "moxing/nn/module.h"

namespace moxing::models {

/// The keys of transformers' LlamaConfig that shape the model, with its defaults.
struct LlamaConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  std::optional<int64_t> num_key_value_heads;  // null: num_attention_heads
  std::optional<int64_t> head_dim;             // null: hidden_size / num_attention_heads
  std::string hidden_act = "silu";
  int64_t max_position_embeddings = 2048;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  double attention_dropout = 0.0;
  std::optional<int64_t> bos_token_id = 1;
  std::optional<int64_t> eos_token_id = 2;
  std::optional<int64_t> pad_token_id;

  template <class F>
  void visit(F&& f) {
    f("vocab_size", vocab_size);
    f("hidden_size", hidden_size);
    f("intermediate_size", intermediate_size);
    f("num_hidden_layers", num_hidden_layers);
    f("num_attention_heads", num_attention_heads);
    f("num_key_value_heads", num_key_value_heads);
    f("head_dim", head_dim);
    f("hidden_act", hidden_act);
    f("max_position_embeddings", max_position_embeddings);
    f("initializer_range", initializer_range);
    f("rms_norm_eps", rms_norm_eps);
    f("rope_theta", rope_theta);
    f("tie_word_embeddings", tie_word_embeddings);
    f("attention_bias", attention_bias);
    f("mlp_bias", mlp_bias);
    f("attention_dropout", attention_dropout);
    f("bos_token_id", bos_token_id);
    f("eos_token_id", eos_token_id);
    f("pad_token_id", pad_token_id);
  }

  int64_t kv_heads() const {
    return num_key_value_heads ? *num_key_value_heads : num_attention_heads;
  }
  int64_t head_size() const { return head_dim ? *head_dim : hidden_size / num_attention_heads; }
  /// Throws moxing::Error naming the first invalid value.
  void validate() const;
};

/// x / sqrt(mean(x^2) + eps) * weight over the last dim (transformers' LlamaRMSNorm).
class LlamaRMSNorm : public nn::UnaryModule {
 public:
  LlamaRMSNorm(int64_t size, double eps);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LlamaRMSNorm"; }
  double eps;
  Tensor weight;  // (size), ones at first
};

/// cos and sin (T, head_size) of the rotary embedding at positions [first, first + T), computed
/// in f32 as transformers does, in dtype.
std::pair<Tensor, Tensor> rotary_tables(int64_t first, int64_t T, int64_t head_size, double theta,
                                        DType dtype);
/// x * cos + rotate_half(x) * sin for x (..., T, head_size), rotate_half(x) = [-x2, x1].
Tensor apply_rotary(const Tensor& x, const Tensor& cos, const Tensor& sin);

/// Grouped-query self-attention: q_proj (C -> NH*HD), k_proj and v_proj (C -> NKV*HD), rotary
/// embeddings on q and k, causal softmax attention, o_proj (NH*HD -> C).
class LlamaAttention : public nn::Module {
 public:
  LlamaAttention(const LlamaConfig& config, Generator* gen);
  /// x (B,T,C) -> (B,T,C); cos, sin (T,HD) of the positions; with a cache (B,NKV,S_max,HD),
  /// `past` positions filled, the new keys and values are written at [past, past + T).
  Tensor forward(const Tensor& x, const Tensor& cos, const Tensor& sin, Tensor* k_cache = nullptr,
                 Tensor* v_cache = nullptr, int64_t past = 0);
  std::string type_name() const override { return "LlamaAttention"; }
  int64_t n_head, n_kv_head, head_size;
  double attention_dropout;
  nn::Slot<nn::UnaryModule> q_proj, k_proj, v_proj, o_proj;  // nn::Linear unless swapped
};

/// down_proj(silu(gate_proj(x)) * up_proj(x)).
class LlamaMLP : public nn::UnaryModule {
 public:
  LlamaMLP(const LlamaConfig& config, Generator* gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LlamaMLP"; }
  nn::Slot<nn::UnaryModule> gate_proj, up_proj, down_proj;
};

/// x = x + self_attn(input_layernorm(x)); x = x + mlp(post_attention_layernorm(x)).
class LlamaDecoderLayer : public nn::Module {
 public:
  LlamaDecoderLayer(const LlamaConfig& config, Generator* gen);
  Tensor forward(const Tensor& x, const Tensor& cos, const Tensor& sin, Tensor* k_cache = nullptr,
                 Tensor* v_cache = nullptr, int64_t past = 0);
  std::string type_name() const override { return "LlamaDecoderLayer"; }
  nn::Slot<nn::UnaryModule> input_layernorm, post_attention_layernorm, mlp;
  nn::Slot<LlamaAttention> self_attn;
};

/// The body (transformers' LlamaModel): embed_tokens, layers.0 .. layers.{L-1}, norm.
class LlamaModel : public nn::Module {
 public:
  LlamaModel(const LlamaConfig& config, Generator* gen);
  std::string type_name() const override { return "LlamaModel"; }
  nn::Slot<nn::UnaryModule> embed_tokens;  // nn::Embedding (V,C)
  std::shared_ptr<nn::ModuleList> layers;
  nn::Slot<nn::UnaryModule> norm;
};

/// Llama with its language-model head: ids (B,T) -> next-token logits (B,T,V). Weights start
/// as transformers starts them: N(0, initializer_range^2) for embeddings and linear weights,
/// zero biases, unit RMSNorm weights.
class Llama : public nn::Module, public CausalLM {
 public:
  explicit Llama(const LlamaConfig& config, Generator* gen = nullptr);

  /// ids (B,T) -> logits (B,T,V); records the graph for training.
  Tensor forward(const Tensor& ids);
  /// The positions after the cache's: appends their keys and values, returns their logits.
  Tensor forward(const Tensor& ids, KVCache* cache);
  Tensor hidden_states(const Tensor& ids, KVCache* cache = nullptr) override;
  Tensor lm_head(const Tensor& h) const override;
  int64_t context_length() const override { return config_.max_position_embeddings; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t bos_token_id() const override { return config_.bos_token_id.value_or(0); }
  /// key/value heads only (num_key_value_heads): grouped-query attention keeps the cache small
  KVCache make_cache(int64_t batch = 1, int64_t capacity = 0) const override;

  const LlamaConfig& config() const { return config_; }
  std::string type_name() const override { return "LlamaForCausalLM"; }

  std::shared_ptr<LlamaModel> model;
  nn::Slot<nn::UnaryModule> head;  // "lm_head"; its weight is embed_tokens' when tied

 private:
  Tensor run_body(const Tensor& ids, KVCache* cache);
  LlamaConfig config_;
};

}  // namespace moxing::models
