// nn layers and containers beyond the PyTorch fixtures: default initializations checked
// statistically (moxing's random stream differs from torch's), nn::init, Dropout modes,
// container names and indexing, summary(), tied parameters, save/load, constructor errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "moxing/nn/nn.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/random.h"

using namespace moxing;

namespace {

struct Stats {
  double mean = 0, std = 0, min = 0, max = 0;
};

Stats stats(const Tensor& t) {
  auto v = t.to_vector<double>();
  Stats s;
  s.min = s.max = v[0];
  for (double x : v) {
    s.mean += x;
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
  }
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / static_cast<double>(v.size()));
  return s;
}

// U(-bound, bound): inside the bounds, reaching near them (the gap to a bound is about
// 2 bound / n), std bound / sqrt(3); tolerances are 6 standard errors for n samples
void expect_uniform(const Tensor& t, double bound, const std::string& what) {
  Stats s = stats(t);
  double n = static_cast<double>(t.numel());
  EXPECT_LE(s.max, bound) << what;
  EXPECT_GE(s.min, -bound) << what;
  EXPECT_GT(s.max, (1.0 - 12.0 / n) * bound) << what;
  EXPECT_LT(s.min, -(1.0 - 12.0 / n) * bound) << what;
  EXPECT_NEAR(s.std, bound / std::sqrt(3.0), 6.0 * 0.26 * bound / std::sqrt(n)) << what;
  EXPECT_NEAR(s.mean, 0.0, 6.0 * 0.58 * bound / std::sqrt(n)) << what;
}

std::vector<std::string> names(const nn::TensorList& l) {
  std::vector<std::string> out;
  for (const auto& [n, t] : l) out.push_back(n);
  return out;
}

}  // namespace

TEST(Init, LinearMatchesTorchDefault) {
  nn::Linear lin(256, 512);
  expect_uniform(lin.weight, 1.0 / 16.0, "weight");
  expect_uniform(lin.bias, 1.0 / 16.0, "bias");
  EXPECT_TRUE(lin.weight.requires_grad());
  EXPECT_TRUE(lin.weight.is_leaf());
}

TEST(Init, ConvMatchesTorchDefault) {
  nn::Conv2d conv(32, 64, 3, 1, 1, 1, 2);  // fan_in = 32 / 2 * 9 = 144
  EXPECT_EQ(conv.weight.shape(), (Shape{64, 16, 3, 3}));
  expect_uniform(conv.weight, 1.0 / 12.0, "conv weight");
  expect_uniform(conv.bias, 1.0 / 12.0, "conv bias");
  nn::ConvTranspose2d convt(64, 16, 3);  // weight (64, 16, 3, 3): fan_in = 16 * 9 = 144
  EXPECT_EQ(convt.weight.shape(), (Shape{64, 16, 3, 3}));
  expect_uniform(convt.weight, 1.0 / 12.0, "conv_transpose weight");
}

TEST(Init, EmbeddingAndLayerNorm) {
  nn::Embedding emb(1000, 64, -1);
  EXPECT_EQ(emb.padding_idx, std::optional<int64_t>(999));
  for (float v : emb.weight.select(0, 999).to_vector<float>()) EXPECT_EQ(v, 0.0f);
  Stats s = stats(emb.weight.narrow(0, 0, 999));
  EXPECT_NEAR(s.mean, 0.0, 0.02);
  EXPECT_NEAR(s.std, 1.0, 0.02);
  nn::LayerNorm ln({3, 4});
  for (float v : ln.weight.to_vector<float>()) EXPECT_EQ(v, 1.0f);
  for (float v : ln.bias.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  nn::LayerNorm plain({4}, 1e-5, false);
  EXPECT_EQ(plain.parameters().size(), 0u);
}

TEST(Init, Functions) {
  Tensor w = empty({300, 200});
  nn::init::xavier_uniform_(w);
  expect_uniform(w, std::sqrt(6.0 / 500.0), "xavier_uniform_");
  nn::init::xavier_normal_(w, 2.0);
  EXPECT_NEAR(stats(w).std, 2.0 * std::sqrt(2.0 / 500.0), 0.002);
  nn::init::kaiming_normal_(w, 0.0, "fan_in", "relu");
  EXPECT_NEAR(stats(w).std, std::sqrt(2.0 / 200.0), 0.002);
  nn::init::kaiming_uniform_(w, 0.0, "fan_out", "relu");
  expect_uniform(w, std::sqrt(2.0) * std::sqrt(3.0 / 300.0), "kaiming_uniform_ fan_out");
  nn::init::trunc_normal_(w, 0.0, 1.0, -2.0, 2.0);
  Stats t = stats(w);
  EXPECT_GE(t.min, -2.0);
  EXPECT_LE(t.max, 2.0);
  EXPECT_NEAR(t.std, 0.8796, 0.01);  // std of N(0, 1) truncated to [-2, 2]
  nn::init::normal_(w, 3.0, 0.5);
  EXPECT_NEAR(stats(w).mean, 3.0, 0.01);
  nn::init::constant_(w, 0.25);
  EXPECT_EQ(stats(w).max, 0.25);
  nn::init::ones_(w);
  nn::init::zeros_(w);
  EXPECT_EQ(stats(w).max, 0.0);
  Tensor d = empty({1000}, DType::f64);
  nn::init::uniform_(d, 2.0, 3.0);
  EXPECT_GE(stats(d).min, 2.0);
  EXPECT_LT(stats(d).max, 3.0);
}

TEST(Init, GainAndFans) {
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("relu"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("tanh"), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("linear"), 1.0);
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("leaky_relu"), std::sqrt(2.0 / (1.0 + 1e-4)));
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("leaky_relu", std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
  auto [fan_in, fan_out] = nn::init::calculate_fan_in_and_fan_out(empty({8, 3, 5, 5}));
  EXPECT_EQ(fan_in, 75);
  EXPECT_EQ(fan_out, 200);
  EXPECT_THROW(nn::init::calculate_fan_in_and_fan_out(empty({8})), Error);
  EXPECT_THROW(nn::init::kaiming_uniform_(empty({4, 4}), 0.0, "fan_both"), Error);
  EXPECT_THROW(nn::init::calculate_gain("swish"), Error);
  EXPECT_THROW(nn::init::uniform_(empty({4}, DType::i64)), Error);
}

TEST(Init, GeneratorMakesItReproducible) {
  Generator g1(42), g2(42);
  nn::Linear a(8, 8, true, &g1), b(8, 8, true, &g2);
  EXPECT_EQ(a.weight.to_vector<float>(), b.weight.to_vector<float>());
  EXPECT_EQ(a.bias.to_vector<float>(), b.bias.to_vector<float>());
}

TEST(Dropout, TrainingAndEval) {
  auto model = std::make_shared<nn::Sequential>(std::make_shared<nn::Dropout>(0.5));
  Tensor x = ones({10000});
  auto y = model->forward(x).to_vector<float>();
  int zeros = 0;
  for (float v : y) {
    if (v == 0.0f) {
      ++zeros;
    } else {
      EXPECT_EQ(v, 2.0f);
    }
  }
  EXPECT_NEAR(zeros, 5000, 300);
  model->eval();
  EXPECT_FALSE(model->at<nn::Dropout>(0)->is_training());
  EXPECT_EQ(model->forward(x).to_vector<float>(), x.to_vector<float>());
  model->train();
  EXPECT_NE(model->forward(x).to_vector<float>(), x.to_vector<float>());
}

TEST(Containers, SequentialNames) {
  auto inner = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(2, 3),
                                                std::make_shared<nn::ReLU>());
  nn::Sequential model(std::make_shared<nn::Linear>(4, 2), std::make_shared<nn::Tanh>(), inner);
  EXPECT_EQ(names(model.named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "2.0.weight", "2.0.bias"}));
  EXPECT_EQ(model.size(), 3u);
  EXPECT_EQ(model.at<nn::Linear>(0)->out_features, 2);
  EXPECT_EQ(model[-1].get(), inner.get());
  EXPECT_THROW(model[3], Error);
  EXPECT_THROW(model.at<nn::Linear>(1), Error);
  Tensor y = model(randn({5, 4}));
  EXPECT_EQ(y.shape(), (Shape{5, 3}));
  auto mods = model.named_modules();
  ASSERT_EQ(mods.size(), 6u);
  EXPECT_EQ(mods[4].first, "2.0");
}

TEST(Containers, ModuleListAndDict) {
  auto blocks = std::make_shared<nn::ModuleList>();
  for (int i = 0; i < 3; ++i) blocks->push_back(std::make_shared<nn::Linear>(2, 2));
  nn::ModuleDict heads;
  heads.insert("cls", std::make_shared<nn::Linear>(2, 5));
  heads.insert("blocks", blocks);
  EXPECT_EQ(heads.keys(), (std::vector<std::string>{"cls", "blocks"}));
  EXPECT_TRUE(heads.contains("cls"));
  EXPECT_EQ(heads.at<nn::Linear>("cls")->out_features, 5);
  EXPECT_EQ(names(heads.named_parameters())[2], "blocks.0.weight");
  EXPECT_EQ(names(heads.named_parameters()).back(), "blocks.2.bias");
  int n = 0;
  for (const auto& m : *blocks) n += static_cast<int>(m->num_parameters());
  EXPECT_EQ(n, 18);
  EXPECT_EQ(blocks->at<nn::Linear>(-1)->in_features, 2);
  try {
    heads["head"];
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "ModuleDict: no module \"head\" (keys: cls, blocks)");
  }
  EXPECT_THROW(heads.insert("cls", std::make_shared<nn::ReLU>()), Error);
  EXPECT_THROW(heads.insert("a.b", std::make_shared<nn::ReLU>()), Error);
}

TEST(Module, SummaryOfSequential) {
  nn::Sequential model(std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::ReLU>(),
                       std::make_shared<nn::Linear>(8, 3, false));
  std::string s = model.summary();
  EXPECT_EQ(s,
            "Sequential(\n"
            "  (0): Linear(in_features=4, out_features=8, bias=True)  # weight [8, 4], bias [8]: "
            "40 params\n"
            "  (1): ReLU()\n"
            "  (2): Linear(in_features=8, out_features=3, bias=False)  # weight [3, 8]: 24 "
            "params\n"
            ")\n"
            "Total parameters: 64 (trainable: 64)\n");
  model.at<nn::Linear>(2)->weight.requires_grad_(false);
  EXPECT_NE(model.summary().find("Total parameters: 64 (trainable: 40)"), std::string::npos);
  EXPECT_EQ(model.num_parameters(true), 40);
}

TEST(Module, TiedWeightsCountedOnce) {
  auto emb = std::make_shared<nn::Embedding>(10, 4);
  auto head = std::make_shared<nn::Linear>(4, 10);
  head->weight = head->register_parameter("weight", emb->weight);
  nn::Sequential model(emb, head);
  EXPECT_EQ(names(model.named_parameters()), (std::vector<std::string>{"0.weight", "1.bias"}));
  EXPECT_EQ(model.num_parameters(), 50);
  EXPECT_EQ(names(model.state_dict()),
            (std::vector<std::string>{"0.weight", "1.weight", "1.bias"}));
  Tensor idx = from_vector<int64_t>({1, 2, 3}, {3});
  model(idx).sum().backward();
  EXPECT_TRUE(emb->weight.grad().defined());
  model.zero_grad();
  EXPECT_FALSE(emb->weight.grad().defined());
}

TEST(Module, SaveLoadRoundTripKeepsOutputs) {
  auto path = (std::filesystem::temp_directory_path() / "moxing_nn_test.safetensors").string();
  auto build = [] {
    return std::make_shared<nn::Sequential>(
        std::make_shared<nn::Conv2d>(2, 3, 3, 1, 1), std::make_shared<nn::GELU>(),
        std::make_shared<nn::AdaptiveAvgPool2d>(1), std::make_shared<nn::Flatten>(),
        std::make_shared<nn::LayerNorm>(Shape{3}), std::make_shared<nn::Linear>(3, 2));
  };
  auto a = build();
  auto b = build();
  Tensor x = randn({2, 2, 5, 5});
  EXPECT_NE(a->forward(x).to_vector<float>(), b->forward(x).to_vector<float>());
  nn::save_module(*a, path);
  auto r = nn::load_module(*b, path);
  EXPECT_TRUE(r.missing_keys.empty());
  EXPECT_EQ(a->forward(x).to_vector<float>(), b->forward(x).to_vector<float>());
  auto small = std::make_shared<nn::Sequential>(std::make_shared<nn::Conv2d>(2, 3, 3, 1, 1));
  try {
    nn::load_module(*small, path);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "load_state_dict: unexpected keys: 4.weight, 4.bias, 5.weight, 5.bias");
  }
  EXPECT_TRUE(nn::load_module(*small, path, false).missing_keys.empty());
  std::filesystem::remove(path);
}

TEST(Layers, ConstructorAndForwardErrors) {
  EXPECT_THROW(nn::Conv2d(3, 4, 3, 1, 0, 1, 2), Error);
  EXPECT_THROW(nn::GELU("fast"), Error);
  EXPECT_THROW(nn::Dropout(1.5), Error);
  EXPECT_THROW(nn::Embedding(4, 2, 4), Error);
  nn::Linear lin(3, 2);
  EXPECT_THROW(lin(ones({2, 4})), Error);
  EXPECT_EQ(lin.extra_repr(), "in_features=3, out_features=2, bias=True");
  nn::Conv2d conv(4, 8, {3, 5}, 2, {1, 2}, 1, 4, false);
  EXPECT_EQ(conv.extra_repr(),
            "4, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2), groups=4, bias=False");
  EXPECT_EQ(nn::LayerNorm({6}).extra_repr(), "(6,), eps=1e-05, elementwise_affine=True");
  EXPECT_EQ(nn::MaxPool2d(2).stride, (Size2{2, 2}));
}
