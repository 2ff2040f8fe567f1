// nn::Module without layers: registration, dotted names, state_dict, strict loading, to().
#include <gtest/gtest.h>

#include <filesystem>

#include "moxing/autograd/node.h"
#include "moxing/nn/module.h"
#include "moxing/nn/serialize.h"
#include "moxing/ops/linalg.h"

using namespace moxing;

namespace {

struct Leaf : nn::Module {
  Tensor weight, bias, running;
  Leaf(int64_t out, int64_t in) {
    weight = register_parameter("weight", full({out, in}, 0.5));
    bias = register_parameter("bias", zeros({out}));
    running = register_buffer("running", ones({out}));
  }
  std::string type_name() const override { return "Leaf"; }
};

struct Net : nn::Module {
  std::shared_ptr<Leaf> a, b;
  Net() {
    a = register_module("a", std::make_shared<Leaf>(4, 3));
    b = register_module("b", std::make_shared<Leaf>(2, 4));
  }
  std::string type_name() const override { return "Net"; }
};

std::vector<std::string> names(const nn::TensorList& l) {
  std::vector<std::string> out;
  for (const auto& [n, t] : l) out.push_back(n);
  return out;
}

}  // namespace

TEST(Module, DottedNamesInRegistrationOrder) {
  Net net;
  EXPECT_EQ(names(net.named_parameters()),
            (std::vector<std::string>{"a.weight", "a.bias", "b.weight", "b.bias"}));
  EXPECT_EQ(names(net.named_buffers()), (std::vector<std::string>{"a.running", "b.running"}));
  EXPECT_EQ(names(net.state_dict()), (std::vector<std::string>{"a.weight", "a.bias", "a.running",
                                                               "b.weight", "b.bias", "b.running"}));
  auto mods = net.named_modules();
  ASSERT_EQ(mods.size(), 3u);
  EXPECT_EQ(mods[0].first, "");
  EXPECT_EQ(mods[2].first, "b");
  EXPECT_EQ(net.children().size(), 2u);
  EXPECT_EQ(net.num_parameters(), 12 + 4 + 8 + 2);
  EXPECT_TRUE(net.a->weight.requires_grad());
}

TEST(Module, RegistryKeepsTheMemberHandle) {
  Net net;
  EXPECT_EQ(net.state_dict()[0].second.impl(), net.a->weight.impl());
  nn::TensorList sd = {{"a.weight", full({4, 3}, 2.0)}, {"a.bias", zeros({4})},
                       {"a.running", zeros({4})},       {"b.weight", zeros({2, 4})},
                       {"b.bias", zeros({2})},          {"b.running", zeros({2})}};
  net.load_state_dict(sd);
  EXPECT_EQ(net.a->weight.to_vector<float>()[5], 2.0f);
  EXPECT_EQ(net.a->running.to_vector<float>()[0], 0.0f);
}

TEST(Module, StrictErrorsListEveryKey) {
  Net net;
  nn::TensorList sd;
  for (auto& [n, t] : net.state_dict()) {
    if (n == "b.bias") continue;
    sd.emplace_back(n, n == "a.weight" ? zeros({5, 3}) : t.clone());
  }
  sd.emplace_back("c.weight", zeros({1}));
  try {
    net.load_state_dict(sd);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "load_state_dict: missing keys: b.bias; unexpected keys: c.weight; shape "
                 "mismatch: a.weight is [5, 3] in the checkpoint but [4, 3] in the model");
  }
  // not strict: the shape mismatch still throws, and nothing was copied
  EXPECT_THROW(net.load_state_dict(sd, false), Error);
  sd[0].second = full({4, 3}, 3.0);
  auto r = net.load_state_dict(sd, false);
  EXPECT_EQ(r.missing_keys, std::vector<std::string>{"b.bias"});
  EXPECT_EQ(r.unexpected_keys, std::vector<std::string>{"c.weight"});
  EXPECT_EQ(net.a->weight.to_vector<float>()[0], 3.0f);
}

TEST(Module, LoadConvertsDtypeWhenAskedAndToChangesIt) {
  Net net;
  auto sd = net.state_dict();
  for (auto& [n, t] : sd) t = full(t.shape(), 1.5, DType::f64);
  EXPECT_THROW(net.load_state_dict(sd), Error);
  net.load_state_dict(sd, {.convert_dtype = true});
  EXPECT_EQ(net.a->weight.dtype(), DType::f32);
  EXPECT_EQ(net.a->weight.to_vector<float>()[0], 1.5f);
  net.to(DType::f64);
  EXPECT_EQ(net.a->weight.dtype(), DType::f64);
  EXPECT_EQ(net.state_dict()[0].second.dtype(), DType::f64);
  EXPECT_TRUE(net.a->weight.requires_grad());
  EXPECT_EQ(net.a->weight.to_vector<double>()[0], 1.5);
}

TEST(Module, ToDeviceMovesEveryTensorAndTheMembersFollow) {
  Net net;
  net.b->register_parameter("tied", net.a->weight);
  const Shape shape = net.a->weight.shape();
  net.to(kMeta);
  for (const auto& [name, t] : net.state_dict()) {
    EXPECT_EQ(t.device().type, DeviceType::meta) << name;
  }
  EXPECT_EQ(net.a->weight.device().type, DeviceType::meta);
  EXPECT_EQ(net.a->weight.shape(), shape);
  EXPECT_TRUE(net.a->weight.requires_grad());
  EXPECT_EQ(net.named_parameters().size(), 4u);  // still tied: moved once
  Tensor y = matmul(zeros({2, 3}, kMeta), net.a->weight.t());
  EXPECT_EQ(y.device().type, DeviceType::meta);
  net.to(kMeta);  // already there: nothing to do
  // a meta tensor has no values to bring back
  EXPECT_THROW(net.to(kCPU), Error);
}

TEST(Module, TrainEvalRecurse) {
  Net net;
  EXPECT_TRUE(net.b->is_training());
  net.eval();
  EXPECT_FALSE(net.is_training());
  EXPECT_FALSE(net.b->is_training());
  net.train();
  EXPECT_TRUE(net.a->is_training());
}

TEST(Module, SharedParameterListedOnce) {
  Net net;
  net.b->register_parameter("tied", net.a->weight);
  auto params = net.named_parameters();
  EXPECT_EQ(params.size(), 4u);
  EXPECT_EQ(net.num_parameters(), 12 + 4 + 8 + 2);
  // the state dict keeps every name, as torch
  EXPECT_EQ(net.state_dict().size(), 7u);
}

TEST(Module, RegistrationErrors) {
  Leaf leaf(2, 2);
  EXPECT_THROW(leaf.register_buffer("weight", zeros({1})), Error);
  EXPECT_THROW(leaf.register_parameter("a.b", zeros({1})), Error);
  EXPECT_THROW(leaf.register_module<nn::Module>("x", nullptr), Error);
}

TEST(Module, SaveAndLoadRoundTrip) {
  auto path = (std::filesystem::temp_directory_path() / "moxing_module_test.safetensors").string();
  Net a;
  {
    NoGradGuard g;
    a.a->weight.fill_(7.0);
  }
  nn::save_module(a, path);
  Net b;
  nn::load_module(b, path);
  EXPECT_EQ(b.a->weight.to_vector<float>(), a.a->weight.to_vector<float>());
  std::filesystem::remove(path);
}

TEST(Module, SummaryNamesShapesAndTotal) {
  Net net;
  std::string s = net.summary();
  EXPECT_NE(s.find("Net("), std::string::npos) << s;
  EXPECT_NE(s.find("(a): Leaf()  # weight [4, 3], bias [4]: 16 params"), std::string::npos) << s;
  EXPECT_NE(s.find("Total parameters: 26 (trainable: 26)"), std::string::npos) << s;
}
