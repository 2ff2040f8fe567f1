// The "cnn" family: an image classifier of conv blocks (Conv2d with same padding, ReLU,
// MaxPool2d(2)) per entry of channels, then the mlp head (Flatten, Linear+ReLU per hidden
// size, Linear to the classes), as one nn::Sequential.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/nn/containers.h"

namespace moxing::models {

/// The cnn field table. num_channels, image_size and num_labels come from the data.
struct CNNConfig {
  std::vector<int64_t> channels = {32, 64};
  int64_t kernel_size = 3;
  std::vector<int64_t> hidden = {128};
  /// Dropout after each hidden layer's ReLU (none when 0; the layers' names then stay those
  /// of a model without it).
  double hidden_dropout_prob = 0.0;
  int64_t num_channels = 1;
  int64_t image_size = 28;
  int64_t num_labels = 10;

  template <class F>
  void visit(F&& f) {
    f("channels", channels);
    f("kernel_size", kernel_size);
    f("hidden", hidden);
    f("hidden_dropout_prob", hidden_dropout_prob);
    f("num_channels", num_channels);
    f("image_size", image_size);
    f("num_labels", num_labels);
  }
  /// Positive sizes, an odd kernel, an image large enough for every pooling.
  void validate() const;
};

/// Builds the cnn classifier: inputs (B,C,H,W) -> logits (B,K).
std::shared_ptr<nn::Sequential> make_cnn(const CNNConfig& config, Generator* gen = nullptr);

}  // namespace moxing::models
