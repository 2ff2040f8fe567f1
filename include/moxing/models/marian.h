// Marian: the encoder-decoder Transformer of Hugging Face's MarianMTModel (model_type "marian"),
// layer for layer and with its parameter names, so that a folder transformers saves loads here
// and one moxing saves loads there. Post-LayerNorm encoder and decoder layers (self-attention,
// cross-attention in the decoder, feed-forward), static sinusoidal positions (sin in the first
// half of the features, cos in the second; not a parameter and not saved, as transformers 5),
// optional sqrt(d_model) embedding scale, one vocabulary shared by encoder, decoder and lm_head or
// separate source and target tables, final_logits_bias. Not layerdrop, not Marian's tokenizers.
// A moxing extension: position_embeddings = "learned" gives each stack a trained position table
// (embed_positions.weight, saved); transformers' Marian ignores the key and would use its
// sinusoidal table, so such a model loads in moxing only (the family's description says so).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "moxing/core/rng.h"
#include "moxing/models/seq2seq.h"
#include "moxing/nn/containers.h"
#include "moxing/nn/layers.h"
#include "moxing/nn/module.h"

namespace moxing::models {

/// The keys of transformers' MarianConfig that shape the model, with its defaults
/// (opus-mt's sizes).
struct MarianConfig {
  int64_t vocab_size = 58101;
  std::optional<int64_t> decoder_vocab_size;  // null: vocab_size
  int64_t max_position_embeddings = 1024;
  int64_t encoder_layers = 12;
  int64_t encoder_ffn_dim = 4096;
  int64_t encoder_attention_heads = 16;
  int64_t decoder_layers = 12;
  int64_t decoder_ffn_dim = 4096;
  int64_t decoder_attention_heads = 16;
  double encoder_layerdrop = 0.0;
  double decoder_layerdrop = 0.0;
  bool use_cache = true;
  bool is_encoder_decoder = true;
  /// "gelu" (erf), "gelu_new" (tanh), "relu", "swish" / "silu".
  std::string activation_function = "gelu";
  int64_t d_model = 1024;
  double dropout = 0.1;
  double attention_dropout = 0.0;
  double activation_dropout = 0.0;
  double init_std = 0.02;
  int64_t decoder_start_token_id = 58100;
  bool scale_embedding = false;
  int64_t pad_token_id = 58100;
  int64_t eos_token_id = 0;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> forced_eos_token_id = 0;  // kept for transformers; decoding ignores it
  bool share_encoder_decoder_embeddings = true;
  bool tie_word_embeddings = true;
  /// "sinusoidal" (Marian's, computed) or "learned" (a parameter per stack; moxing only)
  std::string position_embeddings = "sinusoidal";

  template <class F>
  void visit(F&& f) {
    f("vocab_size", vocab_size);
    f("decoder_vocab_size", decoder_vocab_size);
    f("max_position_embeddings", max_position_embeddings);
    f("encoder_layers", encoder_layers);
    f("encoder_ffn_dim", encoder_ffn_dim);
    f("encoder_attention_heads", encoder_attention_heads);
    f("decoder_layers", decoder_layers);
    f("decoder_ffn_dim", decoder_ffn_dim);
    f("decoder_attention_heads", decoder_attention_heads);
    f("encoder_layerdrop", encoder_layerdrop);
    f("decoder_layerdrop", decoder_layerdrop);
    f("use_cache", use_cache);
    f("is_encoder_decoder", is_encoder_decoder);
    f("activation_function", activation_function);
    f("d_model", d_model);
    f("dropout", dropout);
    f("attention_dropout", attention_dropout);
    f("activation_dropout", activation_dropout);
    f("init_std", init_std);
    f("decoder_start_token_id", decoder_start_token_id);
    f("scale_embedding", scale_embedding);
    f("pad_token_id", pad_token_id);
    f("eos_token_id", eos_token_id);
    f("bos_token_id", bos_token_id);
    f("forced_eos_token_id", forced_eos_token_id);
    f("share_encoder_decoder_embeddings", share_encoder_decoder_embeddings);
    f("tie_word_embeddings", tie_word_embeddings);
    f("position_embeddings", position_embeddings);
  }

  /// The decoder's (and lm_head's) vocabulary: vocab_size when shared or when
  /// decoder_vocab_size is null.
  int64_t target_vocab_size() const;
  /// Throws moxing::Error naming the first invalid value.
  void validate() const;
};

/// Marian's sinusoidal position table (n_pos, dim): column c < ceil(dim/2) is
/// sin(p / 10000^(2c/dim)), column ceil(dim/2) + c is cos(p / 10000^(2c/dim)).
/// Matches MarianSinusoidalPositionalEmbedding.create_weight.
Tensor marian_sinusoidal_positions(int64_t n_pos, int64_t dim);

/// Multi-head attention with separate q_proj, k_proj, v_proj, out_proj (C -> C each, biased).
class MarianAttention : public nn::Module {
 public:
  MarianAttention(int64_t d_model, int64_t n_head, double dropout, double init_std, Generator* gen);
  /// x (B,T,C) attends kv (B,S,C) (x itself for self-attention) -> (B,T,C); mask broadcasts to
  /// (B,NH,T,S) (bool, true = attend); causal: query t attends keys s <= t.
  Tensor forward(const Tensor& x, const Tensor& kv, const Tensor& mask, bool causal);
  /// Self-attention over a cache (B,NH,S_max,HS) whose first `past` positions are filled: the
  /// new keys and values are written at [past, past + T).
  Tensor forward_cached(const Tensor& x, Tensor& k_cache, Tensor& v_cache, int64_t past);
  /// Keys and values of kv (B,S,C) as heads (B,NH,S,HS): cross-attention's, computed once.
  std::pair<Tensor, Tensor> keys_values(const Tensor& kv);
  /// x (B,T,C) attends given heads k, v (B,NH,S,HS) -> (B,T,C).
  Tensor attend(const Tensor& x, const Tensor& k, const Tensor& v, const Tensor& mask, bool causal);
  std::string type_name() const override { return "MarianAttention"; }
  int64_t n_head;
  double dropout_p;
  nn::Slot<nn::UnaryModule> q_proj, k_proj, v_proj, out_proj;  // nn::Linear when built

 private:
  Tensor heads(const Tensor& x) const;  // (B,T,C) -> (B,NH,T,HS)
};

/// h = LN(x + self_attn(x)); y = LN(h + fc2(act(fc1(h)))) (post-LayerNorm).
class MarianEncoderLayer : public nn::Module {
 public:
  MarianEncoderLayer(const MarianConfig& config, Generator* gen);
  /// x (B,S,C), mask (B,1,1,S) bool or undefined -> (B,S,C).
  Tensor forward(const Tensor& x, const Tensor& mask);
  std::string type_name() const override { return "MarianEncoderLayer"; }
  nn::Slot<MarianAttention> self_attn;
  nn::Slot<nn::UnaryModule> self_attn_layer_norm, fc1, fc2, final_layer_norm;
  std::string activation;
  double dropout, activation_dropout;
};

/// Causal self-attention, cross-attention over the memory, feed-forward; each
/// post-LayerNorm.
class MarianDecoderLayer : public nn::Module {
 public:
  MarianDecoderLayer(const MarianConfig& config, Generator* gen);
  /// x (B,T,C) over memory (B,S,C) with memory_mask (B,1,1,S) -> (B,T,C) (teacher forcing).
  Tensor forward(const Tensor& x, const Tensor& memory, const Tensor& memory_mask);
  /// One decoding step over cached keys and values (layer l of cache, `past` positions).
  Tensor forward_cached(const Tensor& x, Seq2SeqCache& cache, size_t l, int64_t past);
  std::string type_name() const override { return "MarianDecoderLayer"; }
  nn::Slot<MarianAttention> self_attn, encoder_attn;
  nn::Slot<nn::UnaryModule> self_attn_layer_norm, encoder_attn_layer_norm, fc1, fc2,
      final_layer_norm;
  std::string activation;
  double dropout, activation_dropout;

 private:
  Tensor feed_forward(const Tensor& h);
};

/// Token embeddings (scaled), positions (sinusoidal, or the learned embed_positions), dropout
/// and the layers of one side.
class MarianStack : public nn::Module {
 public:
  MarianStack(const MarianConfig& config, bool decoder, std::shared_ptr<nn::Embedding> embed,
              Generator* gen);
  std::string type_name() const override { return decoder_ ? "MarianDecoder" : "MarianEncoder"; }
  /// ids (B,T) starting at position `past` -> embeddings * scale + positions, dropped out.
  Tensor embed(const Tensor& ids, int64_t past);
  nn::Slot<nn::UnaryModule> embed_tokens;          // nn::Embedding (V,C)
  std::shared_ptr<nn::Embedding> embed_positions;  // (max_positions, C) when learned, else null
  std::shared_ptr<nn::ModuleList> layers;

 private:
  bool decoder_;
  double scale_, dropout_;
  int64_t max_positions_;
  Tensor positions_;  // sinusoidal (max_positions, C) on the device and dtype last used
};

/// The body (transformers' MarianModel): shared (when shared), encoder, decoder.
class MarianModel : public nn::Module {
 public:
  MarianModel(const MarianConfig& config, Generator* gen);
  std::string type_name() const override { return "MarianModel"; }
  std::shared_ptr<MarianStack> encoder, decoder;
};

/// MarianMTModel: the body, lm_head (tied to the target embedding when tie_word_embeddings) and
/// final_logits_bias (1,V), a buffer. Weights initialized as transformers does: N(0, init_std^2)
/// for linear weights and embeddings (the pad row zero), zero biases and final_logits_bias.
class MarianMTModel : public nn::Module, public Seq2SeqLM {
 public:
  explicit MarianMTModel(const MarianConfig& config, Generator* gen = nullptr);

  Tensor encode(const Tensor& src_ids, const Tensor& src_mask = Tensor()) override;
  Tensor decoder_states(const Tensor& tgt_ids, const Tensor& memory,
                        const Tensor& src_mask = Tensor()) override;
  /// lm_head (C -> V) plus final_logits_bias.
  Tensor lm_head(const Tensor& h) override;
  Seq2SeqCache make_cache(const Tensor& memory, const Tensor& src_mask = Tensor(),
                          int64_t capacity = 0) override;
  Tensor decode_step(const Tensor& ids, Seq2SeqCache& cache) override;
  /// Teacher-forced logits (B,T,V) of src_ids (B,S) with src_mask and tgt_ids (B,T).
  Tensor forward(const Tensor& src_ids, const Tensor& src_mask, const Tensor& tgt_ids);

  int64_t max_positions() const override { return config_.max_position_embeddings; }
  int64_t source_vocab_size() const override { return config_.vocab_size; }
  int64_t target_vocab_size() const override { return config_.target_vocab_size(); }
  int64_t decoder_start_token_id() const override { return config_.decoder_start_token_id; }
  int64_t eos_token_id() const override { return config_.eos_token_id; }
  int64_t pad_token_id() const override { return config_.pad_token_id; }

  const MarianConfig& config() const { return config_; }
  std::string type_name() const override { return "MarianMTModel"; }

  std::shared_ptr<MarianModel> model;
  nn::Slot<nn::UnaryModule> head;  // "lm_head": nn::Linear (C -> V), no bias
  Tensor final_logits_bias;        // (1,V)

 private:
  Tensor ids_checked(const Tensor& ids, const char* what, int64_t past) const;
  MarianConfig config_;
};

}  // namespace moxing::models
