// The "cnn" family: config, the classifier and its registration.
#include "moxing/models/cnn.h"

#include <fmt/format.h>

#include "moxing/core/error.h"
#include "moxing/models/family.h"
#include "moxing/models/mlp.h"
#include "moxing/nn/layers.h"

namespace moxing::models {

void CNNConfig::validate() const {
  for (int64_t c : channels) MOXING_CHECK(c > 0, "cnn: channels must be > 0, got {}", c);
  MOXING_CHECK(kernel_size > 0 && kernel_size % 2 == 1,
               "cnn: kernel_size must be odd and > 0, got {}", kernel_size);
  validate_head("cnn");
  int64_t size = image_size;
  for (size_t i = 0; i < channels.size(); ++i) {
    MOXING_CHECK(size >= 2, "cnn: a {}x{} input is too small for {} conv blocks (each halves it)",
                 image_size, image_size, channels.size());
    size /= 2;
  }
}

std::shared_ptr<nn::Sequential> make_cnn(const CNNConfig& c, Generator* gen) {
  c.validate();
  auto model = std::make_shared<nn::Sequential>();
  int64_t in = c.num_channels, size = c.image_size;
  const int64_t k = c.kernel_size;
  for (int64_t out : c.channels) {
    model->push_back(std::make_shared<nn::Conv2d>(in, out, k, 1, k / 2, 1, 1, true, gen));
    model->push_back(std::make_shared<nn::ReLU>());
    model->push_back(std::make_shared<nn::MaxPool2d>(2));
    in = out;
    size /= 2;
  }
  append_mlp_head(*model, in * size * size, c.hidden, c.hidden_dropout_prob, c.num_labels, gen);
  return model;
}

namespace {

Family make_cnn_family() {
  Family f = make_family<CNNConfig>(
      "cnn", {}, {{"CNNForImageClassification", "image-classification"}},
      [](const CNNConfig& c, const std::string&, Generator* gen) -> std::shared_ptr<nn::Module> {
        return make_cnn(c, gen);
      },
      [](const CNNConfig& c) {
        return fmt::format(
            "CNN with conv channels [{}] ({}x{} kernels), hidden [{}] over {}x{}x{} "
            "inputs, {} classes",
            fmt::join(c.channels, ", "), c.kernel_size, c.kernel_size, fmt::join(c.hidden, ", "),
            c.num_channels, c.image_size, c.image_size, c.num_labels);
      });
  f.data_keys = CNNConfig::data_keys();
  return f;
}

}  // namespace

MOXING_REGISTER_FAMILY(make_cnn_family);

}  // namespace moxing::models
