// The "dcgan" family: config, generator, discriminator, DCGAN's initialization and the
// registration of both architectures (the gan task trains them together).
#include "moxing/models/dcgan.h"

#include <fmt/format.h>

#include "moxing/core/error.h"
#include "moxing/models/family.h"
#include "moxing/nn/batchnorm.h"
#include "moxing/nn/init.h"
#include "moxing/nn/layers.h"

namespace moxing::models {

void DCGANConfig::validate() const {
  MOXING_CHECK(nz > 0, "dcgan: nz must be > 0, got {}", nz);
  MOXING_CHECK(!generator_channels.empty(), "dcgan: generator_channels must not be empty");
  for (int64_t c : generator_channels) {
    MOXING_CHECK(c > 0, "dcgan: generator_channels must be > 0, got {}", c);
  }
  for (int64_t c : discriminator_channels) {
    MOXING_CHECK(c > 0, "dcgan: discriminator_channels must be > 0, got {}", c);
  }
  MOXING_CHECK(discriminator_channels.size() == generator_channels.size(),
               "dcgan: discriminator_channels has {} entries and generator_channels {}: each "
               "halves or doubles the image, so they must match",
               discriminator_channels.size(), generator_channels.size());
  MOXING_CHECK(leaky_relu_slope >= 0 && leaky_relu_slope < 1,
               "dcgan: leaky_relu_slope must be in [0, 1), got {}", leaky_relu_slope);
  MOXING_CHECK(num_channels > 0, "dcgan: num_channels must be > 0, got {}", num_channels);
  const int64_t blocks = static_cast<int64_t>(generator_channels.size());
  MOXING_CHECK(blocks < 16 && image_size > 0 && image_size % (int64_t{1} << blocks) == 0,
               "dcgan: image_size {} does not halve whole {} times (one per generator_channels "
               "entry)",
               image_size, blocks);
}

int64_t DCGANConfig::base_size() const {
  return image_size >> static_cast<int64_t>(generator_channels.size());
}

void dcgan_init_(nn::Module& m, Generator* gen) {
  m.for_each_module<nn::Conv2d>(
      [&](const std::string&, nn::Conv2d& c) { nn::init::normal_(c.weight, 0.0, 0.02, gen); });
  m.for_each_module<nn::ConvTranspose2d>([&](const std::string&, nn::ConvTranspose2d& c) {
    nn::init::normal_(c.weight, 0.0, 0.02, gen);
  });
  m.for_each_module<nn::BatchNorm>([&](const std::string&, nn::BatchNorm& b) {
    nn::init::normal_(b.weight, 1.0, 0.02, gen);
    nn::init::zeros_(b.bias);
  });
}

DCGANGenerator::DCGANGenerator(const DCGANConfig& config, Generator* gen) : config_(config) {
  config_.validate();
  auto main = std::make_shared<nn::Sequential>();
  const std::vector<int64_t>& ch = config_.generator_channels;
  // (B,nz,1,1) -> (B,c0,base,base)
  main->push_back(std::make_shared<nn::ConvTranspose2d>(config_.nz, ch[0], config_.base_size(), 1,
                                                        0, 0, 1, false, 1, gen));
  main->push_back(std::make_shared<nn::BatchNorm2d>(ch[0]));
  main->push_back(std::make_shared<nn::ReLU>());
  for (size_t i = 0; i < ch.size(); ++i) {
    const bool last = i + 1 == ch.size();
    const int64_t out = last ? config_.num_channels : ch[i + 1];
    main->push_back(
        std::make_shared<nn::ConvTranspose2d>(ch[i], out, 4, 2, 1, 0, 1, false, 1, gen));
    if (last) {
      main->push_back(std::make_shared<nn::Tanh>());
    } else {
      main->push_back(std::make_shared<nn::BatchNorm2d>(out));
      main->push_back(std::make_shared<nn::ReLU>());
    }
  }
  dcgan_init_(*main, gen);
  main_ = register_slot<nn::UnaryModule>("main", main);
}

Tensor DCGANGenerator::forward(const Tensor& z) {
  MOXING_CHECK((z.dim() == 2 || (z.dim() == 4 && z.size(2) == 1 && z.size(3) == 1)) &&
                   z.size(1) == config_.nz,
               "DCGANGenerator: expected latent vectors (B,{}) or (B,{},1,1), got {}", config_.nz,
               config_.nz, shape_str(z.shape()));
  return main_->forward(z.reshape({z.size(0), config_.nz, 1, 1}));
}

DCGANDiscriminator::DCGANDiscriminator(const DCGANConfig& config, Generator* gen)
    : config_(config) {
  config_.validate();
  auto main = std::make_shared<nn::Sequential>();
  const std::vector<int64_t>& ch = config_.discriminator_channels;
  int64_t in = config_.num_channels;
  for (size_t i = 0; i < ch.size(); ++i) {
    main->push_back(std::make_shared<nn::Conv2d>(in, ch[i], 4, 2, 1, 1, 1, false, gen));
    if (i > 0 && config_.discriminator_batchnorm) {
      main->push_back(std::make_shared<nn::BatchNorm2d>(ch[i]));
    }
    main->push_back(std::make_shared<nn::LeakyReLU>(config_.leaky_relu_slope));
    in = ch[i];
  }
  // (B,c_last,base,base) -> (B,1,1,1)
  main->push_back(std::make_shared<nn::Conv2d>(in, 1, config_.base_size(), 1, 0, 1, 1, false, gen));
  dcgan_init_(*main, gen);
  main_ = register_slot<nn::UnaryModule>("main", main);
}

Tensor DCGANDiscriminator::forward(const Tensor& x) {
  const int64_t c = config_.num_channels, s = config_.image_size;
  MOXING_CHECK(x.dim() == 4 && x.size(1) == c && x.size(2) == s && x.size(3) == s,
               "DCGANDiscriminator: expected images (B,{},{},{}), got {}", c, s, s,
               shape_str(x.shape()));
  return main_->forward(x).reshape({x.size(0)});
}

namespace {

Family make_dcgan_family() {
  Family f = make_family<DCGANConfig>(
      "dcgan", {}, {{"DCGANGenerator", "gan"}, {"DCGANDiscriminator", "gan"}},
      [](const DCGANConfig& c, const std::string& arch,
         Generator* gen) -> std::shared_ptr<nn::Module> {
        if (arch == "DCGANDiscriminator") return std::make_shared<DCGANDiscriminator>(c, gen);
        return std::make_shared<DCGANGenerator>(c, gen);
      },
      [](const DCGANConfig& c) {
        return fmt::format(
            "DCGAN: latent {} -> generator [{}] -> {}x{}x{} images -> discriminator [{}]{}", c.nz,
            fmt::join(c.generator_channels, ", "), c.num_channels, c.image_size, c.image_size,
            fmt::join(c.discriminator_channels, ", "),
            c.discriminator_batchnorm ? " with BatchNorm" : "");
      });
  f.data_keys = DCGANConfig::data_keys();
  return f;
}

}  // namespace

MOXING_REGISTER_FAMILY(make_dcgan_family);

}  // namespace moxing::models
