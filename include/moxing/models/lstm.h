// The "lstm" family: recurrent language models and text classifiers built on nn::LSTM (or
// nn::GRU, nn::RNN): an embedding table, a stacked (optionally bidirectional) recurrent
// network, and a head. LSTMForCausalLM is a CausalLM (the causal-lm task, `moxing generate`,
// perplexity; its cache is the recurrent state, so each generated token costs one step);
// LSTMForSequenceClassification is a SequenceClassifier (the sequence-classification task,
// `moxing classify`), pooling the states of the real tokens of a padded batch. Parameter names
// are torch.nn's ("rnn.weight_ih_l0", "embedding.weight"), so a state_dict of the same
// torch modules loads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/models/causal_lm.h"
#include "moxing/models/encoder.h"
#include "moxing/nn/layers.h"
#include "moxing/nn/module.h"
#include "moxing/nn/recurrent.h"

namespace moxing::models {

struct LSTMConfig {
  int64_t vocab_size = 10000;
  int64_t embedding_size = 256;
  int64_t hidden_size = 256;
  int64_t num_layers = 2;
  /// "lstm", "gru", "rnn_tanh" or "rnn_relu".
  std::string cell = "lstm";
  /// Both directions, their states concatenated (classifiers only: a language model reads
  /// left to right).
  bool bidirectional = false;
  /// On the embeddings, between layers and before the head, in training.
  double dropout = 0.0;
  /// Embeddings and recurrent weights of the head drawn from U(-init_range, init_range)
  /// (the recurrent layers keep torch's U(-1/sqrt(H), 1/sqrt(H))).
  double init_range = 0.1;
  /// The language model's head shares the embedding table (needs embedding_size ==
  /// hidden_size).
  bool tie_word_embeddings = false;
  int64_t pad_token_id = 0;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 0;
  /// How a classifier turns the states of a text into one vector: "max" (each feature's
  /// largest value over the real tokens), "mean" (their average) or "last" (the final state
  /// of each direction of the last layer).
  std::string pooling = "max";
  int64_t num_labels = 2;
  std::map<std::string, std::string> id2label;
  std::map<std::string, int64_t> label2id;
  std::optional<std::string> problem_type;

  template <class F>
  void visit(F&& f) {
    f("vocab_size", vocab_size);
    f("embedding_size", embedding_size);
    f("hidden_size", hidden_size);
    f("num_layers", num_layers);
    f("cell", cell);
    f("bidirectional", bidirectional);
    f("dropout", dropout);
    f("init_range", init_range);
    f("tie_word_embeddings", tie_word_embeddings);
    f("pad_token_id", pad_token_id);
    f("bos_token_id", bos_token_id);
    f("eos_token_id", eos_token_id);
    f("pooling", pooling);
    f("num_labels", num_labels);
    f("id2label", id2label);
    f("label2id", label2id);
    f("problem_type", problem_type);
  }
  void after_read(const nlohmann::json& source);
  void validate() const;
};

/// The embedding table and the recurrent layers that both heads share.
class LSTMBody : public nn::Module {
 public:
  LSTMBody(const LSTMConfig& config, bool bidirectional, Generator* gen);
  /// ids i64 (B,T) -> outputs (B,T,D*H) (dropout applied) and the final states. lengths: i64
  /// (B) or undefined (all T); h0/c0 undefined for zeros.
  nn::RNNOutput forward(const Tensor& ids, const Tensor& lengths, const Tensor& h0 = Tensor(),
                        const Tensor& c0 = Tensor());
  std::string type_name() const override { return "LSTMBody"; }
  nn::Slot<nn::UnaryModule> embedding, dropout;
  std::shared_ptr<nn::RNNBase> rnn;
};

/// Embedding, recurrent layers, dropout, Linear(H, V) head: a CausalLM without a context
/// limit (context_length() is 0; training windows come from [data] max_length).
class LSTMForCausalLM : public nn::Module, public CausalLM {
 public:
  explicit LSTMForCausalLM(const LSTMConfig& config, Generator* gen = nullptr);
  /// ids (B,T) -> (B,T,H). With a cache, ids follow the positions in cache->state, which
  /// becomes the state after them; no graph is recorded.
  Tensor hidden_states(const Tensor& ids, KVCache* cache = nullptr) override;
  Tensor lm_head(const Tensor& h) const override;
  int64_t context_length() const override { return 0; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t bos_token_id() const override { return config_.bos_token_id; }
  KVCache make_cache(int64_t batch = 1, int64_t capacity = 0) const override;
  std::string type_name() const override { return "LSTMForCausalLM"; }
  std::shared_ptr<LSTMBody> body;
  nn::Slot<nn::UnaryModule> head;

 private:
  LSTMConfig config_;
};

/// Embedding, (bi)directional recurrent layers over the real tokens only (the lengths come
/// from the attention mask), pooling, dropout, Linear(D*H, num_labels).
class LSTMForSequenceClassification : public nn::Module, public SequenceClassifier {
 public:
  explicit LSTMForSequenceClassification(const LSTMConfig& config, Generator* gen = nullptr);
  Tensor classify(const EncoderInputs& inputs) override;
  int64_t num_labels() const override { return config_.num_labels; }
  std::vector<std::string> labels() const override;
  std::string problem_type() const override { return config_.problem_type.value_or(""); }
  std::string type_name() const override { return "LSTMForSequenceClassification"; }
  std::shared_ptr<LSTMBody> body;
  nn::Slot<nn::UnaryModule> classifier;

 private:
  LSTMConfig config_;
};

}  // namespace moxing::models
