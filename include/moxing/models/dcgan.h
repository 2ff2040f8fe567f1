// The "dcgan" family (Radford et al. 2015, as PyTorch's examples/dcgan builds it): a generator
// of transposed convolutions from a latent vector to an image in [-1, 1], and a discriminator of
// strided convolutions to one logit. One config serves both architectures, so a run's
// generator folder (what `moxing sample` loads) and its discriminator/ folder share config.json.
// Also the interfaces the gan task and `moxing sample` take, so that they name no family.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/nn/containers.h"
#include "moxing/nn/module.h"

namespace moxing::models {

/// A generator of images: latent vectors z (B,nz) -> images (B,C,H,W) in [-1, 1].
class ImageGenerator : public nn::UnaryModule {
 public:
  virtual int64_t latent_size() const = 0;
  virtual int64_t num_channels() const = 0;
  virtual int64_t image_size() const = 0;
};

/// A discriminator: images (B,C,H,W) -> logits (B) of "real".
class ImageDiscriminator : public nn::UnaryModule {};

/// The dcgan field table. num_channels and image_size come from the data. With n entries in
/// generator_channels the generator starts at image_size / 2^n pixels (which must be whole):
/// 28 x 28 with two entries starts at 7 x 7 and doubles to 14 and 28.
struct DCGANConfig {
  int64_t nz = 64;  ///< latent size
  /// The generator's widths from the first (smallest) feature map up; the last block maps to
  /// num_channels.
  std::vector<int64_t> generator_channels = {128, 64};
  /// The discriminator's widths from the image down (as many entries as generator_channels).
  std::vector<int64_t> discriminator_channels = {64, 128};
  /// BatchNorm2d after each discriminator conv but the first (DCGAN's layout).
  bool discriminator_batchnorm = true;
  double leaky_relu_slope = 0.2;
  int64_t num_channels = 1;
  int64_t image_size = 28;

  static std::vector<std::string> data_keys() { return {"num_channels", "image_size"}; }

  template <class F>
  void visit(F&& f) {
    f("nz", nz);
    f("generator_channels", generator_channels);
    f("discriminator_channels", discriminator_channels);
    f("discriminator_batchnorm", discriminator_batchnorm);
    f("leaky_relu_slope", leaky_relu_slope);
    f("num_channels", num_channels);
    f("image_size", image_size);
  }
  /// Positive sizes, as many discriminator as generator blocks, an image size that halves
  /// whole that many times; errors start with "dcgan:".
  void validate() const;
  /// The generator's first feature map side: image_size / 2^blocks.
  int64_t base_size() const;
};

/// z (B,nz) or (B,nz,1,1) -> images (B,C,H,W): ConvTranspose2d(nz, c0, base) + BatchNorm2d +
/// ReLU, then per width ConvTranspose2d(4, stride 2, padding 1) doubling the side (+ BatchNorm2d
/// + ReLU), the last one to num_channels with Tanh. Parameters are main.<i>.*, as PyTorch's
/// DCGAN example names its netG.
class DCGANGenerator : public ImageGenerator {
 public:
  DCGANGenerator(const DCGANConfig& config, Generator* gen = nullptr);
  Tensor forward(const Tensor& z) override;
  std::string type_name() const override { return "DCGANGenerator"; }
  int64_t latent_size() const override { return config_.nz; }
  int64_t num_channels() const override { return config_.num_channels; }
  int64_t image_size() const override { return config_.image_size; }

 private:
  DCGANConfig config_;
  nn::Slot<nn::UnaryModule> main_;
};

/// images (B,C,H,W) -> logits (B): Conv2d(4, stride 2, padding 1) + LeakyReLU per width
/// (BatchNorm2d before the LeakyReLU of all but the first when discriminator_batchnorm), then
/// Conv2d(c_last, 1, base) to one logit. No sigmoid: the loss is BCE with logits.
class DCGANDiscriminator : public ImageDiscriminator {
 public:
  DCGANDiscriminator(const DCGANConfig& config, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "DCGANDiscriminator"; }

 private:
  DCGANConfig config_;
  nn::Slot<nn::UnaryModule> main_;
};

/// DCGAN's initialization (its weights_init): conv and transposed-conv weights ~ N(0, 0.02),
/// BatchNorm weights ~ N(1, 0.02) and biases 0, over every submodule of m.
void dcgan_init_(nn::Module& m, Generator* gen = nullptr);

}  // namespace moxing::models
