// The image classifiers a training config can name: "mlp" and "cnn" ([model] in config.h),
// built from nn layers as one Sequential over inputs (B,C,H,W) giving logits (B,K).
#pragma once

#include <cstdint>
#include <memory>

#include "moxing/core/rng.h"
#include "moxing/nn/containers.h"
#include "moxing/train/config.h"

namespace moxing::train {

/// What the model reads and predicts: inputs (B,C,H,W), K classes.
struct ModelShape {
  int64_t channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  int64_t num_classes = 10;
};

/// mlp: Flatten, [Linear(.., h), ReLU] per hidden size, Linear(.., K).
/// cnn: [Conv2d(.., c, kernel_size, padding kernel_size/2), ReLU, MaxPool2d(2)] per channel
/// count, Flatten, [Linear(.., h), ReLU] per hidden size, Linear(.., K).
/// Weights are drawn from gen (default_generator() when null), in layer order.
std::shared_ptr<nn::Sequential> make_model(const ModelConfig& config, const ModelShape& shape,
                                           Generator* gen = nullptr);

}  // namespace moxing::train
