// BERT: the "bert" family, layer for layer transformers' BertModel (post-LayerNorm encoder,
// absolute positions, segment embeddings, pooler), BertForSequenceClassification and
// BertForMaskedLM, with their parameter names, so that folders transformers saves load here
// (with or without the "bert." prefix of the body) and ours load there.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/models/encoder.h"
#include "moxing/nn/containers.h"
#include "moxing/nn/module.h"

namespace moxing::models {

/// The keys of transformers' BertConfig that shape the model, with its defaults (BERT-base).
struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  /// "gelu" (erf), "gelu_new" / "gelu_pytorch_tanh" (tanh approximation), "relu".
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;
  /// Only "absolute" (relative position kinds are refused by validate()).
  std::string position_embedding_type = "absolute";
  bool tie_word_embeddings = true;
  // the classification head
  int64_t num_labels = 2;
  std::map<std::string, std::string> id2label;  ///< "0" -> name; LABEL_i when not given
  std::map<std::string, int64_t> label2id;
  /// null, "single_label_classification", "multi_label_classification" or "regression".
  std::optional<std::string> problem_type;
  /// Dropout before the classifier; null means hidden_dropout_prob.
  std::optional<double> classifier_dropout;

  template <class F>
  void visit(F&& f) {
    f("vocab_size", vocab_size);
    f("hidden_size", hidden_size);
    f("num_hidden_layers", num_hidden_layers);
    f("num_attention_heads", num_attention_heads);
    f("intermediate_size", intermediate_size);
    f("hidden_act", hidden_act);
    f("hidden_dropout_prob", hidden_dropout_prob);
    f("attention_probs_dropout_prob", attention_probs_dropout_prob);
    f("max_position_embeddings", max_position_embeddings);
    f("type_vocab_size", type_vocab_size);
    f("initializer_range", initializer_range);
    f("layer_norm_eps", layer_norm_eps);
    f("pad_token_id", pad_token_id);
    f("position_embedding_type", position_embedding_type);
    f("tie_word_embeddings", tie_word_embeddings);
    f("num_labels", num_labels);
    f("id2label", id2label);
    f("label2id", label2id);
    f("problem_type", problem_type);
    f("classifier_dropout", classifier_dropout);
  }

  /// As transformers: num_labels follows id2label when the source leaves it out; a num_labels
  /// that id2label does not match gives LABEL_0 .. LABEL_{n-1}; label2id follows id2label.
  void after_read(const nlohmann::json& source);
  /// Throws moxing::Error naming the first invalid value.
  void validate() const;
  /// The label names in id order.
  std::vector<std::string> label_names() const;
};

/// word + position + token-type embeddings, LayerNorm, dropout.
class BertEmbeddings : public nn::Module {
 public:
  BertEmbeddings(const BertConfig& config, Generator* gen);
  /// ids, token types i64 (B,T) -> (B,T,C).
  Tensor forward(const Tensor& ids, const Tensor& token_type_ids);
  std::string type_name() const override { return "BertEmbeddings"; }
  nn::Slot<nn::UnaryModule> word_embeddings, position_embeddings, token_type_embeddings;
  nn::Slot<nn::UnaryModule> LayerNorm, dropout;
};

/// The real tokens of a padded (B,T) batch, when the layers run on them alone: flat positions
/// b * T + t (i64 (N)), in order.
struct PackedTokens {
  Tensor index;
  int64_t B = 0, T = 0;
};

/// query, key, value (C -> C each): multi-head attention over the unmasked keys.
class BertSelfAttention : public nn::Module {
 public:
  BertSelfAttention(const BertConfig& config, Generator* gen);
  /// x (B,T,C), mask bool (B,1,1,T) or undefined -> (B,T,C) before the output projection.
  /// With packed, x is the (N,C) rows of the real tokens and so is the result: the
  /// projections run on those rows, attention on the batch padded with zeros.
  Tensor forward(const Tensor& x, const Tensor& mask, const PackedTokens* packed = nullptr);
  std::string type_name() const override { return "BertSelfAttention"; }
  int64_t num_heads;
  double dropout_p;
  nn::Slot<nn::UnaryModule> query, key, value;
};

/// dense, dropout, then LayerNorm(x + residual): the post-LN sublayer end.
class BertSublayerOutput : public nn::Module {
 public:
  BertSublayerOutput(int64_t in, const BertConfig& config, Generator* gen,
                     std::string type = "BertSelfOutput");
  Tensor forward(const Tensor& x, const Tensor& residual);
  std::string type_name() const override { return type_; }
  nn::Slot<nn::UnaryModule> dense, LayerNorm, dropout;

 private:
  std::string type_;
};

/// attention.self + attention.output (BertAttention), intermediate.dense + activation,
/// output (dense, dropout, LayerNorm of the sum).
class BertLayer : public nn::Module {
 public:
  BertLayer(const BertConfig& config, Generator* gen);
  /// x (B,T,C), or the (N,C) rows of the real tokens with packed.
  Tensor forward(const Tensor& x, const Tensor& mask, const PackedTokens* packed = nullptr);
  std::string type_name() const override { return "BertLayer"; }
  std::string activation;
  std::shared_ptr<nn::Module> attention, intermediate;  // "attention", "intermediate" folders
  nn::Slot<BertSelfAttention> self;                     // attention.self
  nn::Slot<BertSublayerOutput> attention_output;        // attention.output
  nn::Slot<nn::UnaryModule> intermediate_dense;         // intermediate.dense
  nn::Slot<BertSublayerOutput> output;                  // output
};

/// The encoder body (transformers' BertModel): embeddings, encoder.layer.N, pooler (dense +
/// tanh over the first token) when with_pooler.
class BertModel : public nn::Module, public TextEncoder {
 public:
  BertModel(const BertConfig& config, Generator* gen, bool with_pooler = true);
  Tensor encode(const EncoderInputs& inputs) override;
  /// tanh(dense(h[:, 0])): (B,T,C) -> (B,C). Needs the pooler.
  Tensor pool(const Tensor& hidden) const;
  int64_t max_positions() const override { return config_.max_position_embeddings; }
  int64_t hidden_size() const override { return config_.hidden_size; }
  const BertConfig& config() const { return config_; }
  std::string type_name() const override { return "BertModel"; }

  std::shared_ptr<BertEmbeddings> embeddings;
  std::shared_ptr<nn::Module> encoder;  // holds "layer"
  std::shared_ptr<nn::ModuleList> layer;
  std::shared_ptr<nn::Module> pooler;  // holds "dense"; null without the pooler
  nn::Slot<nn::UnaryModule> pooler_dense;

 private:
  BertConfig config_;
};

/// BertModel + dropout + classifier (C -> num_labels) over the pooled first token.
class BertForSequenceClassification : public nn::Module,
                                      public SequenceClassifier,
                                      public TextEncoder {
 public:
  explicit BertForSequenceClassification(const BertConfig& config, Generator* gen = nullptr);
  Tensor classify(const EncoderInputs& inputs) override;
  Tensor encode(const EncoderInputs& inputs) override { return bert->encode(inputs); }
  int64_t num_labels() const override { return config_.num_labels; }
  std::vector<std::string> labels() const override { return config_.label_names(); }
  std::string problem_type() const override { return config_.problem_type.value_or(""); }
  int64_t max_positions() const override { return bert->max_positions(); }
  int64_t hidden_size() const override { return bert->hidden_size(); }
  std::string type_name() const override { return "BertForSequenceClassification"; }
  std::shared_ptr<BertModel> bert;
  nn::Slot<nn::UnaryModule> dropout, classifier;

 private:
  BertConfig config_;
};

/// BertModel (no pooler) + cls.predictions: dense, activation, LayerNorm, then the decoder
/// (weight tied to the word embeddings) plus cls.predictions.bias.
class BertForMaskedLM : public nn::Module, public MaskedLM, public TextEncoder {
 public:
  explicit BertForMaskedLM(const BertConfig& config, Generator* gen = nullptr);
  Tensor mlm_logits(const EncoderInputs& inputs) override;
  /// The head on the selected positions' hidden states only.
  Tensor mlm_logits_at(const EncoderInputs& inputs, const Tensor& positions) override;
  /// hidden (..., C) -> logits (..., V): the prediction head alone.
  Tensor predict(const Tensor& hidden);
  Tensor encode(const EncoderInputs& inputs) override { return bert->encode(inputs); }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t max_positions() const override { return bert->max_positions(); }
  int64_t hidden_size() const override { return bert->hidden_size(); }
  std::string type_name() const override { return "BertForMaskedLM"; }
  std::shared_ptr<BertModel> bert;
  std::shared_ptr<nn::Module> cls, predictions, transform;  // cls.predictions.transform
  nn::Slot<nn::UnaryModule> transform_dense, transform_LayerNorm, decoder;

 private:
  std::string activation_;
  BertConfig config_;
};

}  // namespace moxing::models
