// GPT: the GPT-2 language model, layer for layer Hugging Face's GPT2LMHeadModel, with its
// parameter names, so that a transformers model directory (config.json + model.safetensors)
// loads here and ours loads there. The family "gpt2" (alias "gpt") registers it; its weight
// rule is that files keep the attention and MLP weights transposed (transformers' Conv1D), which
// the loader applies: the model itself is built from nn::Linear like every other family.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/models/causal_lm.h"
#include "moxing/nn/containers.h"
#include "moxing/nn/layers.h"
#include "moxing/nn/module.h"

namespace moxing::models {

/// The keys of transformers' GPT2Config that shape the model, with its defaults (GPT-2 small).
struct GPTConfig {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;
  int64_t n_embd = 768;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  std::optional<int64_t> n_inner;  // MLP width; null means 4 * n_embd
  /// "gelu_new" and "gelu_pytorch_tanh" (tanh approximation), "gelu" (erf), "relu".
  std::string activation_function = "gelu_new";
  double resid_pdrop = 0.1;
  double embd_pdrop = 0.1;
  double attn_pdrop = 0.1;
  double layer_norm_epsilon = 1e-5;
  double initializer_range = 0.02;
  int64_t bos_token_id = 50256;
  int64_t eos_token_id = 50256;
  bool tie_word_embeddings = true;
  bool scale_attn_weights = true;
  // variants of the attention math that moxing refuses (validate())
  bool scale_attn_by_inverse_layer_idx = false;
  bool reorder_and_upcast_attn = false;
  bool add_cross_attention = false;

  template <class F>
  void visit(F&& f) {
    f("vocab_size", vocab_size);
    f("n_positions", n_positions);
    f("n_embd", n_embd);
    f("n_layer", n_layer);
    f("n_head", n_head);
    f("n_inner", n_inner);
    f("activation_function", activation_function);
    f("resid_pdrop", resid_pdrop);
    f("embd_pdrop", embd_pdrop);
    f("attn_pdrop", attn_pdrop);
    f("layer_norm_epsilon", layer_norm_epsilon);
    f("initializer_range", initializer_range);
    f("bos_token_id", bos_token_id);
    f("eos_token_id", eos_token_id);
    f("tie_word_embeddings", tie_word_embeddings);
    f("scale_attn_weights", scale_attn_weights);
    f("scale_attn_by_inverse_layer_idx", scale_attn_by_inverse_layer_idx);
    f("reorder_and_upcast_attn", reorder_and_upcast_attn);
    f("add_cross_attention", add_cross_attention);
  }

  /// n_inner, or 4 * n_embd when it is null.
  int64_t inner_dim() const { return n_inner ? *n_inner : 4 * n_embd; }
  /// Throws moxing::Error naming the first invalid value (e.g. n_embd not divisible by n_head).
  void validate() const;
  /// Reads config.json text as transformers writes it (keys it does not use are ignored; a
  /// model_type other than "gpt2" or a value of the wrong type is an error naming it).
  static GPTConfig from_json(const std::string& text);
  /// config.json text: model_type "gpt2", architectures ["GPT2LMHeadModel"] and the keys above.
  std::string to_json() const;
};

/// Causal multi-head self-attention: c_attn (C -> 3C) gives q, k, v; c_proj (C -> C).
class GPTAttention : public nn::Module {
 public:
  GPTAttention(const GPTConfig& config, Generator* gen);
  /// x (B,T,C) -> (B,T,C). With a cache (k_cache, v_cache (B,NH,S_max,HS), `past` positions
  /// filled) the new keys and values are written at [past, past + T) and attended with the
  /// past ones.
  Tensor forward(const Tensor& x, Tensor* k_cache = nullptr, Tensor* v_cache = nullptr,
                 int64_t past = 0);
  std::string type_name() const override { return "GPT2Attention"; }
  int64_t n_head;
  double attn_pdrop;
  bool scale_attn_weights;
  nn::Slot<nn::UnaryModule> c_attn, c_proj;  // nn::Linear unless surgery swapped them
  nn::Slot<nn::UnaryModule> resid_dropout;
};

/// c_fc (C -> inner), activation, c_proj (inner -> C), dropout.
class GPTMLP : public nn::UnaryModule {
 public:
  GPTMLP(const GPTConfig& config, Generator* gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GPT2MLP"; }
  std::string activation;
  nn::Slot<nn::UnaryModule> c_fc, c_proj;  // nn::Linear unless surgery swapped them
  nn::Slot<nn::UnaryModule> dropout;
};

/// x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)) (pre-LayerNorm).
class GPTBlock : public nn::Module {
 public:
  GPTBlock(const GPTConfig& config, Generator* gen);
  /// x (B,T,C) -> (B,T,C); the cache arguments as GPTAttention::forward.
  Tensor forward(const Tensor& x, Tensor* k_cache = nullptr, Tensor* v_cache = nullptr,
                 int64_t past = 0);
  std::string type_name() const override { return "GPT2Block"; }
  nn::Slot<nn::UnaryModule> ln_1, ln_2;
  nn::Slot<GPTAttention> attn;
  nn::Slot<nn::UnaryModule> mlp;
};

/// The transformer body (transformers' GPT2Model): wte, wpe, drop, h.0 .. h.{L-1}, ln_f.
class GPTModel : public nn::Module {
 public:
  GPTModel(const GPTConfig& config, Generator* gen);
  std::string type_name() const override { return "GPT2Model"; }
  nn::Slot<nn::UnaryModule> wte, wpe;  // nn::Embedding (V,C), (n_positions,C)
  nn::Slot<nn::UnaryModule> drop;
  std::shared_ptr<nn::ModuleList> h;  // reads its children through the registry
  nn::Slot<nn::UnaryModule> ln_f;
};

/// GPT-2 with its language-model head: ids (B,T) -> next-token logits (B,T,V).
/// Weights are initialized as transformers does: N(0, initializer_range^2) for embeddings and
/// linear weights, N(0, (initializer_range / sqrt(2 n_layer))^2) for each c_proj weight, zero
/// biases, unit LayerNorm weights. With tie_word_embeddings the head's weight is wte's (one
/// tensor under both names). Dropout draws from the default generator.
class GPT : public nn::Module, public CausalLM {
 public:
  explicit GPT(const GPTConfig& config, Generator* gen = nullptr);

  /// ids i64 (B,T), T <= n_positions -> logits f32 (B,T,V). Records the graph for training.
  Tensor forward(const Tensor& ids);
  /// Runs ids (B,T) as the positions that follow the cache's, appends their keys and values
  /// to the cache and returns their logits (B,T,V). For inference: records no graph.
  Tensor forward(const Tensor& ids, KVCache* cache);
  Tensor hidden_states(const Tensor& ids, KVCache* cache = nullptr) override;
  Tensor lm_head(const Tensor& h) const override;
  int64_t context_length() const override { return config_.n_positions; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t bos_token_id() const override { return config_.bos_token_id; }
  KVCache make_cache(int64_t batch = 1, int64_t capacity = 0) const override;

  /// Loads a model directory (models::from_pretrained) holding a GPT-2.
  static std::shared_ptr<GPT> from_pretrained(const std::string& dir);
  /// Writes config.json and model.safetensors in transformers' layout (models::Model).
  void save_pretrained(const std::string& dir) const;

  const GPTConfig& config() const { return config_; }
  std::string type_name() const override { return "GPT2LMHeadModel"; }

  std::shared_ptr<GPTModel> transformer;
  nn::Slot<nn::UnaryModule> head;  // "lm_head", nn::Linear; its weight is wte's when tied

 private:
  Tensor run_body(const Tensor& ids, KVCache* cache);
  GPTConfig config_;
};

}  // namespace moxing::models
