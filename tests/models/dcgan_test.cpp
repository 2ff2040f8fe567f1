// The dcgan family: generator and discriminator shapes for 28x28 and 32x32 images, PyTorch's
// DCGAN-example parameter names, DCGAN's initialization statistics, config errors, and a
// generator folder that loads back (config.json with the family's fields) and generates the same
// images.
#include "moxing/models/dcgan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "expect_error.h"
#include "moxing/autograd/node.h"
#include "moxing/models/family.h"
#include "moxing/nn/batchnorm.h"
#include "moxing/nn/layers.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/random.h"
#include "moxing/ops/reduction.h"
#include "op_harness.h"

namespace moxing::models {
namespace {

namespace fs = std::filesystem;
using moxing::testing::expect_error;

// Mean and standard deviation of the values of t.
std::pair<double, double> stats(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  double s = 0, s2 = 0;
  for (double x : v) {
    s += x;
    s2 += x * x;
  }
  const double n = static_cast<double>(v.size()), m = s / n;
  return {m, std::sqrt(s2 / n - m * m)};
}

TEST(DCGAN, GeneratorAndDiscriminatorShapesFor28x28) {
  DCGANConfig c;  // nz 64, widths [128, 64] and [64, 128]: 7 -> 14 -> 28
  Generator gen(1);
  DCGANGenerator g(c, &gen);
  DCGANDiscriminator d(c, &gen);
  Tensor z = randn({5, 64}, DType::f32, &gen);
  Tensor x = g.forward(z);
  EXPECT_EQ(x.shape(), (Shape{5, 1, 28, 28}));
  EXPECT_LE(max(x).item<double>(), 1.0);  // tanh
  EXPECT_GE(min(x).item<double>(), -1.0);
  // (B,nz,1,1) latents, as PyTorch's example feeds them, give the same images
  Tensor x4 = g.forward(z.reshape({5, 64, 1, 1}));
  EXPECT_EQ(x4.to_vector<float>(), x.to_vector<float>());
  Tensor logits = d.forward(x);
  EXPECT_EQ(logits.shape(), (Shape{5}));
  EXPECT_EQ(g.latent_size(), 64);
  EXPECT_EQ(g.image_size(), 28);
}

TEST(DCGAN, ThreeBlocksFor32x32RgbImages) {
  DCGANConfig c;
  c.nz = 16;
  c.generator_channels = {32, 16, 8};
  c.discriminator_channels = {8, 16, 32};
  c.num_channels = 3;
  c.image_size = 32;  // 4 -> 8 -> 16 -> 32
  DCGANGenerator g(c);
  DCGANDiscriminator d(c);
  Tensor x = g.forward(randn({2, 16}));
  EXPECT_EQ(x.shape(), (Shape{2, 3, 32, 32}));
  EXPECT_EQ(d.forward(x).shape(), (Shape{2}));
}

TEST(DCGAN, ParameterNamesFollowPyTorchsExample) {
  DCGANConfig c;
  DCGANGenerator g(c);
  std::vector<std::string> names;
  for (const auto& [n, t] : g.state_dict()) names.push_back(n);
  // netG.main: ConvTranspose2d(nz, 128, 7, bias=False), BatchNorm2d, ReLU, ...
  const std::vector<std::string> want = {
      "main.0.weight",       "main.1.weight",      "main.1.bias",
      "main.1.running_mean", "main.1.running_var", "main.1.num_batches_tracked",
      "main.3.weight",       "main.4.weight",      "main.4.bias",
      "main.4.running_mean", "main.4.running_var", "main.4.num_batches_tracked",
      "main.6.weight"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(g.state_dict()[0].second.shape(), (Shape{64, 128, 7, 7}));  // (C_in, C_out, K, K)
  DCGANDiscriminator d(c);
  names.clear();
  for (const auto& [n, t] : d.named_parameters()) names.push_back(n);
  // Conv2d(1, 64) LeakyReLU, Conv2d(64, 128) BatchNorm2d LeakyReLU, Conv2d(128, 1, 7)
  EXPECT_EQ(names, (std::vector<std::string>{"main.0.weight", "main.2.weight", "main.3.weight",
                                             "main.3.bias", "main.5.weight"}));
}

TEST(DCGAN, WeightsStartAsDcgansInit) {
  DCGANConfig c;
  Generator gen(3);
  DCGANGenerator g(c, &gen);
  auto [conv_mean, conv_std] = stats(g.get_submodule("main.3")->named_parameters()[0].second);
  EXPECT_NEAR(conv_mean, 0.0, 0.002);
  EXPECT_NEAR(conv_std, 0.02, 0.002);
  auto& bn = dynamic_cast<nn::BatchNorm&>(*g.get_submodule("main.1"));
  auto [bn_mean, bn_std] = stats(bn.weight);
  EXPECT_NEAR(bn_mean, 1.0, 0.01);
  EXPECT_GT(bn_std, 0.005);  // drawn, not ones
  EXPECT_LT(bn_std, 0.04);
  EXPECT_EQ(max(abs(bn.bias)).item<double>(), 0.0);
}

TEST(DCGAN, BadConfigsAndInputsAreClearErrors) {
  DCGANConfig c;
  c.discriminator_channels = {64};
  expect_error([&] { c.validate(); },
               "discriminator_channels has 1 entries and generator_channels 2");
  c = DCGANConfig();
  c.image_size = 30;  // 30 / 4 is not whole
  expect_error([&] { c.validate(); }, "image_size 30 does not halve whole 2 times");
  c = DCGANConfig();
  c.nz = 0;
  expect_error([&] { c.validate(); }, "nz must be > 0");
  DCGANGenerator g{DCGANConfig()};
  expect_error([&] { g.forward(randn({2, 10})); }, "expected latent vectors (B,64)");
  DCGANDiscriminator d{DCGANConfig()};
  expect_error([&] { d.forward(randn({2, 1, 32, 32})); }, "expected images (B,1,28,28)");
  const Family& f = find_family("dcgan");
  expect_error(
      [&] {
        build_model(f, {{"generator_channels", {8, 4}}, {"nz", -1}});
      },
      "nz must be > 0");
  expect_error([&] { build_model(f, {{"ngf", 8}}); }, "ngf");
}

TEST(DCGAN, GeneratorFolderLoadsBackAndGeneratesTheSameImages) {
  const Family& f = find_family("dcgan");
  EXPECT_EQ(f.architecture().name, "DCGANGenerator");
  EXPECT_EQ(f.architecture().task, "gan");
  Generator gen(5);
  Model m = build_model(
      f, {{"nz", 8}, {"generator_channels", {16, 8}}, {"discriminator_channels", {8, 16}}}, "",
      &gen);
  auto& g = m.expect<ImageGenerator>("a generator");
  // a few training-mode forwards move the BatchNorm running statistics away from (0, 1)
  for (int i = 0; i < 3; ++i) g.forward(randn({16, 8}, DType::f32, &gen));
  g.eval();
  Tensor z = randn({4, 8}, DType::f32, &gen);
  Tensor want = g.forward(z);
  fs::path dir = fs::temp_directory_path() / ("moxing_dcgan_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  m.save_pretrained(dir.string());
  Model back = from_pretrained(dir.string());
  EXPECT_EQ(back.architecture, "DCGANGenerator");
  EXPECT_EQ(back.config.at("nz"), 8);
  EXPECT_EQ(back.config.at("generator_channels"), nlohmann::json({16, 8}));
  EXPECT_EQ(back.expect<ImageGenerator>("a generator").forward(z).to_vector<float>(),
            want.to_vector<float>());
  // the discriminator architecture from the same config
  Model d = build_model(f, back.config, "DCGANDiscriminator");
  EXPECT_NE(d.as<ImageDiscriminator>(), nullptr);
  EXPECT_EQ(d.as<ImageGenerator>(), nullptr);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moxing::models
