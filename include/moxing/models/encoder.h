// What a text encoder (BERT and later encoder families) offers the tasks, embedding and the
// CLI, whatever its family: hidden states of a padded batch, and the heads built on them.
// The sequence-classification and masked-LM tasks take these interfaces, never a family's
// class.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moxing/core/tensor.h"
#include "moxing/nn/module.h"

namespace moxing::models {

/// A padded batch of token ids. token_type_ids (segment A = 0, B = 1) and attention_mask
/// (1 = a real token, 0 = padding) are i64 (B,T) like input_ids; undefined means all zeros and
/// all ones, as transformers defaults them.
struct EncoderInputs {
  Tensor input_ids;
  Tensor token_type_ids;
  Tensor attention_mask;
  /// The layers run on the real tokens alone (attention still sees the padded batch): the
  /// same hidden states at real tokens, zeros at padded ones, and much less work for batches
  /// of mixed lengths. Off, padded positions hold what transformers computes for them.
  bool skip_padding = false;
};

/// A bidirectional text encoder: inputs (B,T) -> hidden states (B,T,C).
class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  /// The last layer's hidden states (B,T,C); padded positions hold values that mean nothing
  /// (zeros with skip_padding).
  virtual Tensor encode(const EncoderInputs& inputs) = 0;
  /// Positions the model attends over (max_position_embeddings).
  virtual int64_t max_positions() const = 0;
  virtual int64_t hidden_size() const = 0;
  /// The model as a module (train/eval mode, parameters).
  nn::Module& module() { return dynamic_cast<nn::Module&>(*this); }
};

/// A sequence classifier: inputs (B,T) -> logits (B, num_labels).
class SequenceClassifier {
 public:
  virtual ~SequenceClassifier() = default;
  virtual Tensor classify(const EncoderInputs& inputs) = 0;
  virtual int64_t num_labels() const = 0;
  /// The label names, id order (config.json's id2label).
  virtual std::vector<std::string> labels() const = 0;
  /// "single_label_classification", "multi_label_classification" or "regression"; empty when
  /// the config leaves it to the labels (single-label when num_labels > 1, else regression).
  virtual std::string problem_type() const = 0;
  nn::Module& module() { return dynamic_cast<nn::Module&>(*this); }
};

/// A masked language model: inputs (B,T) -> logits (B,T,V) over the vocabulary.
class MaskedLM {
 public:
  virtual ~MaskedLM() = default;
  virtual Tensor mlm_logits(const EncoderInputs& inputs) = 0;
  /// The logits (N,V) of the N flat positions (b * T + t, i64 (N)) only: what training needs,
  /// where a few positions are masked. The default selects them from mlm_logits; a model
  /// whose head is costly applies it to those positions alone.
  virtual Tensor mlm_logits_at(const EncoderInputs& inputs, const Tensor& positions);
  virtual int64_t vocab_size() const = 0;
  nn::Module& module() { return dynamic_cast<nn::Module&>(*this); }
};

}  // namespace moxing::models
