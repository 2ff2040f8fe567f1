// The "mlp" family: config, the classifier and its registration.
#include "moxing/models/mlp.h"

#include <fmt/format.h>

#include "moxing/core/error.h"
#include "moxing/models/family.h"
#include "moxing/nn/layers.h"

namespace moxing::models {

void ImageClassifierFields::validate_head(const char* family) const {
  for (int64_t h : hidden) MOXING_CHECK(h > 0, "{}: hidden sizes must be > 0, got {}", family, h);
  MOXING_CHECK(num_channels > 0 && image_size > 0,
               "{}: num_channels {} and image_size {} must be > 0", family, num_channels,
               image_size);
  MOXING_CHECK(num_labels > 1, "{}: num_labels must be at least 2, got {}", family, num_labels);
  MOXING_CHECK(hidden_dropout_prob >= 0 && hidden_dropout_prob < 1,
               "{}: hidden_dropout_prob must be in [0, 1), got {}", family, hidden_dropout_prob);
}

void append_mlp_head(nn::Sequential& model, int64_t features, const std::vector<int64_t>& hidden,
                     double dropout, int64_t num_labels, Generator* gen) {
  model.push_back(std::make_shared<nn::Flatten>());
  for (int64_t h : hidden) {
    model.push_back(std::make_shared<nn::Linear>(features, h, true, gen));
    model.push_back(std::make_shared<nn::ReLU>());
    if (dropout > 0) model.push_back(std::make_shared<nn::Dropout>(dropout));
    features = h;
  }
  model.push_back(std::make_shared<nn::Linear>(features, num_labels, true, gen));
}

std::shared_ptr<nn::Sequential> make_mlp(const MLPConfig& c, Generator* gen) {
  c.validate();
  auto model = std::make_shared<nn::Sequential>();
  append_mlp_head(*model, c.num_channels * c.image_size * c.image_size, c.hidden,
                  c.hidden_dropout_prob, c.num_labels, gen);
  return model;
}

namespace {

Family make_mlp_family() {
  Family f = make_family<MLPConfig>(
      "mlp", {}, {{"MLPForImageClassification", "image-classification"}},
      [](const MLPConfig& c, const std::string&, Generator* gen) -> std::shared_ptr<nn::Module> {
        return make_mlp(c, gen);
      },
      [](const MLPConfig& c) {
        return fmt::format("MLP with hidden sizes [{}] over {}x{}x{} inputs, {} classes",
                           fmt::join(c.hidden, ", "), c.num_channels, c.image_size, c.image_size,
                           c.num_labels);
      });
  f.data_keys = MLPConfig::data_keys();
  return f;
}

}  // namespace

MOXING_REGISTER_FAMILY(make_mlp_family);

}  // namespace moxing::models
