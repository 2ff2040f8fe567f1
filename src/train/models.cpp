// The "mlp" and "cnn" classifiers of training configs.
#include "moxing/train/models.h"

#include "moxing/core/error.h"
#include "moxing/nn/layers.h"

namespace moxing::train {

std::shared_ptr<nn::Sequential> make_model(const ModelConfig& config, const ModelShape& shape,
                                           Generator* gen) {
  MOXING_CHECK(shape.channels > 0 && shape.height > 0 && shape.width > 0 && shape.num_classes > 1,
               "make_model: bad input shape ({}, {}, {}) or class count {}", shape.channels,
               shape.height, shape.width, shape.num_classes);
  auto model = std::make_shared<nn::Sequential>();
  int64_t c = shape.channels, h = shape.height, w = shape.width;
  if (config.name == "cnn") {
    for (int64_t out : config.channels) {
      MOXING_CHECK(h >= 2 && w >= 2,
                   "make_model: a {}x{} input is too small for {} conv blocks (each halves it)",
                   shape.height, shape.width, config.channels.size());
      int64_t k = config.kernel_size;
      model->push_back(std::make_shared<nn::Conv2d>(c, out, k, 1, k / 2, 1, 1, true, gen));
      model->push_back(std::make_shared<nn::ReLU>());
      model->push_back(std::make_shared<nn::MaxPool2d>(2));
      c = out;
      h /= 2;
      w /= 2;
    }
  } else {
    MOXING_CHECK(config.name == "mlp", "make_model: unknown model '{}' (valid: mlp, cnn)",
                 config.name);
  }
  model->push_back(std::make_shared<nn::Flatten>());
  int64_t features = c * h * w;
  for (int64_t hidden : config.hidden) {
    model->push_back(std::make_shared<nn::Linear>(features, hidden, true, gen));
    model->push_back(std::make_shared<nn::ReLU>());
    features = hidden;
  }
  model->push_back(std::make_shared<nn::Linear>(features, shape.num_classes, true, gen));
  return model;
}

}  // namespace moxing::train
