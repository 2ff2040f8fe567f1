// GPT: the GPT-2 language model, layer for layer Hugging Face's GPT2LMHeadModel, with its
// parameter names, so that state_dict() keys are the names in a transformers model directory
// (config.json + model.safetensors) and such a directory loads here and ours loads there.
// Also the key/value cache for generation. Sampling and perplexity live in generation.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "moxing/core/rng.h"
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

  /// n_inner, or 4 * n_embd when it is null.
  int64_t inner_dim() const { return n_inner ? *n_inner : 4 * n_embd; }
  /// Throws moxing::Error naming the first invalid value (e.g. n_embd not divisible by n_head).
  void validate() const;
  /// Reads config.json text as transformers writes it. Keys it does not use are ignored; a
  /// model_type other than "gpt2" or a value of the wrong type is an error naming it.
  static GPTConfig from_json(const std::string& text);
  /// config.json text: model_type "gpt2", architectures ["GPT2LMHeadModel"] and the keys above.
  std::string to_json() const;
};

/// y = x W + b with W stored (in, out), the layout of transformers' Conv1D (a linear layer
/// despite the name): x (..., in) -> y (..., out). W ~ N(0, std^2) (left unset when
/// init_weights is false, for a model about to be loaded), b zeros.
class Conv1D : public nn::UnaryModule {
 public:
  Conv1D(int64_t in_features, int64_t out_features, double std, Generator* gen = nullptr,
         bool init_weights = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv1D"; }
  std::string extra_repr() const override;
  int64_t in_features, out_features;
  Tensor weight, bias;  // (in, out), (out)
};

/// Keys and values of every layer for the positions seen so far, so that each decoding step
/// runs the model on the new positions only. k and v of layer l are (B,NH,S_max,HS),
/// allocated once; positions [0, length) hold data.
struct KVCache {
  /// Empty cache for `batch` sequences of up to `capacity` positions (n_positions when 0).
  KVCache(const GPTConfig& config, int64_t batch = 1, int64_t capacity = 0,
          DType dtype = DType::f32);
  std::vector<Tensor> k, v;  // per layer (B,NH,S_max,HS)
  int64_t length = 0;
  int64_t capacity() const { return k.empty() ? 0 : k[0].size(2); }
  /// Forgets every position (the buffers are kept).
  void clear() { length = 0; }
};

/// Causal multi-head self-attention: c_attn (C -> 3C) gives q, k, v; c_proj (C -> C).
class GPTAttention : public nn::Module {
 public:
  GPTAttention(const GPTConfig& config, Generator* gen, bool init_weights = true);
  /// x (B,T,C) -> (B,T,C). With a cache (k_cache, v_cache (B,NH,S_max,HS), `past` positions
  /// filled) the new keys and values are written at [past, past + T) and attended with the
  /// past ones.
  Tensor forward(const Tensor& x, Tensor* k_cache = nullptr, Tensor* v_cache = nullptr,
                 int64_t past = 0);
  std::string type_name() const override { return "GPT2Attention"; }
  int64_t n_head;
  double attn_pdrop;
  bool scale_attn_weights;
  Generator* gen;
  std::shared_ptr<Conv1D> c_attn, c_proj;
  std::shared_ptr<nn::Dropout> resid_dropout;
};

/// c_fc (C -> inner), activation, c_proj (inner -> C), dropout.
class GPTMLP : public nn::UnaryModule {
 public:
  GPTMLP(const GPTConfig& config, Generator* gen, bool init_weights = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GPT2MLP"; }
  std::string activation;
  std::shared_ptr<Conv1D> c_fc, c_proj;
  std::shared_ptr<nn::Dropout> dropout;
};

/// x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)) (pre-LayerNorm).
class GPTBlock : public nn::Module {
 public:
  GPTBlock(const GPTConfig& config, Generator* gen, bool init_weights = true);
  /// x (B,T,C) -> (B,T,C); the cache arguments as GPTAttention::forward.
  Tensor forward(const Tensor& x, Tensor* k_cache = nullptr, Tensor* v_cache = nullptr,
                 int64_t past = 0);
  std::string type_name() const override { return "GPT2Block"; }
  std::shared_ptr<nn::LayerNorm> ln_1, ln_2;
  std::shared_ptr<GPTAttention> attn;
  std::shared_ptr<GPTMLP> mlp;
};

/// The transformer body (transformers' GPT2Model): wte, wpe, drop, h.0 .. h.{L-1}, ln_f.
class GPTModel : public nn::Module {
 public:
  GPTModel(const GPTConfig& config, Generator* gen, bool init_weights = true);
  std::string type_name() const override { return "GPT2Model"; }
  std::shared_ptr<nn::Embedding> wte, wpe;  // (V,C), (n_positions,C)
  std::shared_ptr<nn::Dropout> drop;
  std::shared_ptr<nn::ModuleList> h;
  std::shared_ptr<nn::LayerNorm> ln_f;
};

/// GPT-2 with its language-model head: ids (B,T) -> next-token logits (B,T,V).
/// Weights are initialized as transformers does: N(0, initializer_range^2) for embeddings and
/// Conv1D weights, N(0, (initializer_range / sqrt(2 n_layer))^2) for each c_proj weight, zero
/// biases, unit LayerNorm weights.
class GPT : public nn::Module {
 public:
  explicit GPT(const GPTConfig& config, Generator* gen = nullptr);

  /// ids i64 (B,T), T <= n_positions -> logits f32 (B,T,V). Records the graph for training.
  Tensor forward(const Tensor& ids);
  /// Runs ids (B,T) as the positions that follow the cache's, appends their keys and values
  /// to the cache and returns their logits (B,T,V). For inference: records no graph.
  Tensor forward(const Tensor& ids, KVCache* cache);
  /// The final hidden states ln_f(...) (B,T,C), with or without a cache (as forward; with a
  /// cache no graph is recorded).
  Tensor hidden_states(const Tensor& ids, KVCache* cache = nullptr);
  /// h (..., C) -> logits (..., V) through the head (wte when tied).
  Tensor lm_head(const Tensor& h) const;

  /// Loads a model directory: config.json and model.safetensors with transformers' names
  /// (lm_head.weight may be present or not when tied; the legacy attn.bias and
  /// attn.masked_bias buffers are ignored). Errors list every missing tensor and name each
  /// tensor of the wrong shape.
  static std::shared_ptr<GPT> from_pretrained(const std::string& dir);
  /// Writes config.json and model.safetensors (transformers' names, no lm_head.weight when
  /// tied), each to a temporary file renamed into place. Other files in dir are kept.
  void save_pretrained(const std::string& dir) const;

  const GPTConfig& config() const { return config_; }
  std::string type_name() const override { return "GPT2LMHeadModel"; }

  std::shared_ptr<GPTModel> transformer;
  std::shared_ptr<nn::Linear> lm_head_untied;  // "lm_head", only when not tied

 private:
  // from_pretrained skips the random initialization it would overwrite
  GPT(const GPTConfig& config, Generator* gen, bool init_weights);
  Tensor run_body(const Tensor& ids, KVCache* cache);
  GPTConfig config_;
};

}  // namespace moxing::models
