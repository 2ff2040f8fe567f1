// The "cnn" family: an image classifier of conv blocks (Conv2d with same padding, ReLU,
// MaxPool2d(2)) per entry of channels, then the mlp head (Flatten, Linear+ReLU per hidden
// size, Linear to the classes), as one nn::Sequential.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/models/mlp.h"
#include "moxing/nn/containers.h"

namespace moxing::models {

/// The cnn field table: conv blocks, then the classifier head's fields (mlp.h).
/// num_channels, image_size and num_labels come from the data.
struct CNNConfig : ImageClassifierFields {
  std::vector<int64_t> channels = {32, 64};
  int64_t kernel_size = 3;

  template <class F>
  void visit(F&& f) {
    f("channels", channels);
    f("kernel_size", kernel_size);
    visit_head(f);
  }
  /// Positive sizes, an odd kernel, an image large enough for every pooling.
  void validate() const;
};

/// Builds the cnn classifier: inputs (B,C,H,W) -> logits (B,K).
std::shared_ptr<nn::Sequential> make_cnn(const CNNConfig& config, Generator* gen = nullptr);

}  // namespace moxing::models
