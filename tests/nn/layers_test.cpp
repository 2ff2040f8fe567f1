// nn layers against PyTorch: each case loads tests/fixtures/nn/<case>.safetensors (written by
// tests/fixtures/nn_layers.py) into a freshly built layer with strict load_state_dict, then
// checks the f32 forward, the input gradient and every parameter gradient, and runs an f64
// gradcheck of the same layer w.r.t. its input and parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>

#include "moxing/autograd/gradcheck.h"
#include "moxing/io/safetensors.h"
#include "moxing/nn/nn.h"

using namespace moxing;

namespace {

using Factory = std::function<std::shared_ptr<nn::UnaryModule>()>;

template <class M, class... Args>
Factory make(Args... args) {
  return [=]() -> std::shared_ptr<nn::UnaryModule> { return std::make_shared<M>(args...); };
}

const std::map<std::string, Factory>& cases() {
  static const std::map<std::string, Factory> table = {
      {"linear", make<nn::Linear>(5, 4)},
      {"linear_nobias", make<nn::Linear>(5, 4, false)},
      {"conv2d", make<nn::Conv2d>(3, 4, 3, 1, 1)},
      {"conv2d_grouped",
       make<nn::Conv2d>(4, 6, nn::IntPair(3, 2), 2, nn::IntPair(1, 0), nn::IntPair(1, 2), 2)},
      {"conv_transpose2d", make<nn::ConvTranspose2d>(4, 2, 3, 2, 1, 1)},
      {"conv_transpose2d_grouped",
       make<nn::ConvTranspose2d>(4, 6, nn::IntPair(2, 3), nn::IntPair(2, 1), 0, 0, 2, false,
                                 nn::IntPair(1, 2))},
      {"maxpool2d", make<nn::MaxPool2d>(2)},
      {"maxpool2d_padded", make<nn::MaxPool2d>(3, 2, 1)},
      {"avgpool2d", make<nn::AvgPool2d>(3, 2, 1)},
      {"adaptive_avgpool2d", make<nn::AdaptiveAvgPool2d>(nn::IntPair(2, 3))},
      {"flatten", make<nn::Flatten>()},
      {"relu", make<nn::ReLU>()},
      {"leaky_relu", make<nn::LeakyReLU>(0.2)},
      {"gelu", make<nn::GELU>()},
      {"gelu_tanh", make<nn::GELU>("tanh")},
      {"silu", make<nn::SiLU>()},
      {"tanh", make<nn::Tanh>()},
      {"sigmoid", make<nn::Sigmoid>()},
      {"softmax", make<nn::Softmax>(1)},
      {"dropout_eval",
       [] {
         auto d = std::make_shared<nn::Dropout>(0.3);
         d->eval();
         return d;
       }},
      {"embedding", make<nn::Embedding>(10, 4, 2)},
      {"embedding_nopad", make<nn::Embedding>(6, 3)},
      {"layer_norm", make<nn::LayerNorm>(Shape{6})},
      {"layer_norm_2d", make<nn::LayerNorm>(Shape{3, 4}, 1e-3)},
      {"sequential",
       [] {
         return std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 8),
                                                 std::make_shared<nn::ReLU>(),
                                                 std::make_shared<nn::Linear>(8, 3));
       }},
      {"sequential_nested",
       [] {
         auto inner = std::make_shared<nn::Sequential>(std::make_shared<nn::Conv2d>(2, 3, 3),
                                                       std::make_shared<nn::Tanh>());
         return std::make_shared<nn::Sequential>(inner, std::make_shared<nn::Flatten>(),
                                                 std::make_shared<nn::Linear>(12, 2));
       }},
  };
  return table;
}

std::vector<std::string> case_names() {
  std::vector<std::string> out;
  for (const auto& [n, f] : cases()) out.push_back(n);
  return out;
}

// |a - b| <= 1e-5 + 1e-4 |b| elementwise
void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << " is undefined";
  ASSERT_EQ(got.shape(), want.shape()) << what;
  auto g = got.to_vector<double>();
  auto w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    ASSERT_LE(std::abs(g[i] - w[i]), 1e-5 + 1e-4 * std::abs(w[i]))
        << what << " element " << i << ": " << g[i] << " vs " << w[i];
  }
}

struct Fixture {
  SafetensorsFile file;
  nn::TensorList state;  // the layer's state_dict entries
};

Fixture load_fixture(const std::string& name) {
  Fixture f{load_safetensors(std::string(MOXING_FIXTURE_DIR) + "/nn/" + name + ".safetensors"), {}};
  for (const auto& [n, t] : f.file.tensors) {
    if (n == "input" || n == "output" || n == "grad_output" || n.rfind("grad.", 0) == 0) continue;
    f.state.emplace_back(n, t);
  }
  return f;
}

class LayerCase : public ::testing::TestWithParam<std::string> {};

TEST_P(LayerCase, MatchesTorchInF32) {
  Fixture f = load_fixture(GetParam());
  auto layer = cases().at(GetParam())();
  layer->load_state_dict(f.state);  // strict: names and shapes match torch's
  Tensor x = f.file.get("input").clone();
  bool float_input = is_floating(x.dtype());
  if (float_input) x.requires_grad_();
  Tensor y = (*layer)(x);
  expect_close(y, f.file.get("output"), "output");
  if (!y.requires_grad()) return;
  y.backward(f.file.get("grad_output"));
  if (float_input) expect_close(x.grad(), f.file.get("grad.input"), "grad.input");
  for (const auto& [n, p] : layer->named_parameters()) {
    expect_close(p.grad(), f.file.get("grad." + n), "grad." + n);
  }
}

TEST_P(LayerCase, GradcheckInF64) {
  // the padding row's gradient is zero by definition, not the derivative (embedding_nopad
  // checks the lookup)
  if (GetParam() == "embedding") GTEST_SKIP();
  Fixture f = load_fixture(GetParam());
  auto layer = cases().at(GetParam())();
  layer->load_state_dict(f.state);
  layer->to(DType::f64);
  Tensor x = f.file.get("input");
  std::vector<Tensor> inputs;
  if (is_floating(x.dtype())) {
    inputs.push_back(x.to(DType::f64).clone().requires_grad_());
  } else {
    inputs.push_back(x);
  }
  for (const auto& p : layer->parameters()) inputs.push_back(p);
  auto r = autograd::gradcheck([&](const std::vector<Tensor>& in) { return layer->forward(in[0]); },
                               inputs);
  EXPECT_TRUE(r.ok) << r.message;
}

INSTANTIATE_TEST_SUITE_P(Torch, LayerCase, ::testing::ValuesIn(case_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
