// The "mlp" family: an image classifier that flattens its input (B,C,H,W) and runs Linear+ReLU
// per hidden size, then a Linear to the classes: one nn::Sequential, so its tensors are named
// "0.weight", "2.weight", ... as torch's nn.Sequential names them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/nn/containers.h"

namespace moxing::models {

/// The fields every image classifier family shares (mlp, cnn): the classifier head's hidden
/// sizes and dropout, and what the data fills (num_channels, image_size, num_labels).
struct ImageClassifierFields {
  std::vector<int64_t> hidden = {128};
  /// Dropout after each hidden layer's ReLU (none when 0; the layers' names then stay those
  /// of a model without it).
  double hidden_dropout_prob = 0.0;
  int64_t num_channels = 1;
  int64_t image_size = 28;
  int64_t num_labels = 10;

  /// The keys the task fills from the data.
  static std::vector<std::string> data_keys() {
    return {"num_channels", "image_size", "num_labels"};
  }

  template <class F>
  void visit_head(F&& f) {
    f("hidden", hidden);
    f("hidden_dropout_prob", hidden_dropout_prob);
    f("num_channels", num_channels);
    f("image_size", image_size);
    f("num_labels", num_labels);
  }
  /// Positive sizes, at least two labels, dropout in [0, 1); errors start with family.
  void validate_head(const char* family) const;
};

/// The mlp field table. num_channels, image_size and num_labels come from the data.
struct MLPConfig : ImageClassifierFields {
  template <class F>
  void visit(F&& f) {
    visit_head(f);
  }
  void validate() const { validate_head("mlp"); }
};

/// Appends the classifier head: Flatten, [Linear(.., h), ReLU, Dropout(p) when p > 0] per
/// hidden size, Linear(.., K). features is the flattened input size. Weights drawn from gen in
/// layer order; dropout draws from the default generator.
void append_mlp_head(nn::Sequential& model, int64_t features, const std::vector<int64_t>& hidden,
                     double dropout, int64_t num_labels, Generator* gen);

/// Builds the mlp classifier: inputs (B,C,H,W) -> logits (B,K).
std::shared_ptr<nn::Sequential> make_mlp(const MLPConfig& config, Generator* gen = nullptr);

}  // namespace moxing::models
