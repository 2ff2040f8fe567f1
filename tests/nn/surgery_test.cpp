// Module surgery: a module put in place of a child (by path, or every module of a type) is the
// one the parent's forward runs, state_dict names follow the new tree, and a replacement that
// does not fit the parent's slot, or a path that does not exist, is a clear error.
#include <gtest/gtest.h>

#include "expect_error.h"
#include "moxing/autograd/node.h"
#include "moxing/nn/containers.h"
#include "moxing/nn/layers.h"
#include "moxing/nn/transformer.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/random.h"

using namespace moxing;
using moxing::testing::expect_error;

namespace {

// Wraps a module (as "inner"), counts its calls and scales what the inner module returns.
struct Scaled : nn::UnaryModule {
  nn::Slot<nn::UnaryModule> inner;
  double factor;
  int calls = 0;
  Scaled(std::shared_ptr<nn::UnaryModule> m, double f) : factor(f) {
    inner = register_slot<nn::UnaryModule>("inner", std::move(m));
  }
  Tensor forward(const Tensor& x) override {
    ++calls;
    return mul(inner->forward(x), factor);
  }
  std::string type_name() const override { return "Scaled"; }
};

nn::TransformerLayerOptions small() {
  return {.d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.0};
}

bool has_key(const nn::Module& m, const std::string& key) {
  for (const auto& [n, t] : m.state_dict()) {
    if (n == key) return true;
  }
  return false;
}

std::vector<float> values(const Tensor& t) { return t.contiguous().to_vector<float>(); }

}  // namespace

TEST(Surgery, EncoderLayerForwardRunsTheReplacement) {
  Generator gen(1);
  nn::TransformerEncoderLayer layer(small(), &gen);
  layer.eval();
  Tensor x = randn({5, 2, 8}, DType::f32, &gen);
  NoGradGuard no_grad;
  std::vector<float> before = values(layer.forward(x));

  auto old = layer.get_submodule("linear2");
  auto wrapper = std::make_shared<Scaled>(std::dynamic_pointer_cast<nn::UnaryModule>(old), 1.0);
  layer.replace_module("linear2", wrapper);
  EXPECT_EQ(layer.linear2.get(), wrapper);
  EXPECT_EQ(values(layer.forward(x)), before);
  EXPECT_EQ(wrapper->calls, 1);

  // factor 0 is a feed-forward block that adds nothing: the same as zero linear2 weights
  wrapper->factor = 0.0;
  nn::TransformerEncoderLayer zeroed(small(), &gen);
  zeroed.eval();
  zeroed.load_state_dict(layer.state_dict(), false);
  zeroed.linear2.as<nn::Linear>()->weight.fill_(0.0);
  zeroed.linear2.as<nn::Linear>()->bias.fill_(0.0);
  EXPECT_EQ(values(layer.forward(x)), values(zeroed.forward(x)));
  EXPECT_EQ(wrapper->calls, 2);

  EXPECT_TRUE(has_key(layer, "linear2.inner.weight"));
  EXPECT_TRUE(has_key(layer, "linear2.inner.bias"));
  EXPECT_FALSE(has_key(layer, "linear2.weight"));
  EXPECT_EQ(layer.get_submodule("linear2.inner"), old);
  EXPECT_NE(layer.summary().find("(linear2): Scaled("), std::string::npos) << layer.summary();
  expect_error([&] { layer.linear2.as<nn::Linear>(); },
               "TransformerEncoderLayer: child \"linear2\" is a Scaled, not a Linear");
}

TEST(Surgery, SequentialForwardIndexAndNamesFollowTheRegistry) {
  Generator gen(2);
  nn::Sequential seq(std::make_shared<nn::Linear>(3, 4, true, &gen), std::make_shared<nn::ReLU>(),
                     std::make_shared<nn::Linear>(4, 2, true, &gen));
  Tensor x = randn({6, 3}, DType::f32, &gen);
  NoGradGuard no_grad;
  Tensor before = seq.forward(x);
  auto wrapper = std::make_shared<Scaled>(seq[2], 2.0);
  seq.replace_module("2", wrapper);
  EXPECT_EQ(values(seq.forward(x)), values(mul(before, 2.0)));
  EXPECT_EQ(wrapper->calls, 1);
  EXPECT_EQ(seq[2], wrapper);
  EXPECT_EQ(seq[-1], wrapper);
  int n = 0;
  for (const auto& m : seq) n += m.get() == wrapper;
  EXPECT_EQ(n, 1);
  EXPECT_TRUE(has_key(seq, "2.inner.weight"));
  EXPECT_FALSE(has_key(seq, "2.weight"));
  EXPECT_EQ(seq.size(), 3u);
}

TEST(Surgery, ReplaceModulesOfATypeOverAWholeModel) {
  Generator gen(3);
  nn::TransformerEncoder model(small(), 2, true, &gen);
  model.eval();
  Tensor x = randn({4, 3, 8}, DType::f32, &gen);
  NoGradGuard no_grad;
  std::vector<float> before = values(model.forward(x));

  // nullptr keeps every module
  EXPECT_EQ(model.replace_modules<nn::Linear>(
                [](const std::string&, std::shared_ptr<nn::Linear>) { return nullptr; }),
            0);
  std::vector<std::string> seen;
  std::vector<std::shared_ptr<Scaled>> wrappers;
  int replaced = model.replace_modules<nn::Linear>(
      [&](const std::string& path, std::shared_ptr<nn::Linear> linear) {
        seen.push_back(path);
        wrappers.push_back(std::make_shared<Scaled>(linear, 1.0));
        return wrappers.back();
      });
  EXPECT_EQ(replaced, 6);  // per layer: self_attn.out_proj, linear1, linear2
  EXPECT_EQ(seen, (std::vector<std::string>{"layers.0.self_attn.out_proj", "layers.0.linear1",
                                            "layers.0.linear2", "layers.1.self_attn.out_proj",
                                            "layers.1.linear1", "layers.1.linear2"}));
  EXPECT_EQ(values(model.forward(x)), before);
  for (const auto& w : wrappers) EXPECT_EQ(w->calls, 1);
  EXPECT_TRUE(has_key(model, "layers.1.self_attn.out_proj.inner.weight"));
  EXPECT_TRUE(has_key(model, "layers.0.linear1.inner.bias"));
  EXPECT_FALSE(has_key(model, "layers.0.linear1.weight"));

  int scaled = 0, linears = 0;
  model.for_each_module<Scaled>([&](const std::string&, Scaled&) { ++scaled; });
  model.for_each_module<nn::Linear>([&](const std::string& path, nn::Linear&) {
    ++linears;
    EXPECT_NE(path.find(".inner"), std::string::npos) << path;
  });
  EXPECT_EQ(scaled, 6);
  EXPECT_EQ(linears, 6);

  // the stack's forward reads its layers through the registry too
  auto first = model.layer(0);
  model.replace_module("layers.0", std::make_shared<nn::TransformerEncoderLayer>(small(), &gen));
  EXPECT_NE(model.layer(0), first);
}

TEST(Surgery, ASharedModuleIsReplacedUnderEveryPath) {
  struct Twice : nn::UnaryModule {
    nn::Slot<nn::UnaryModule> a, b;
    explicit Twice(std::shared_ptr<nn::UnaryModule> m) {
      a = register_slot<nn::UnaryModule>("a", m);
      b = register_slot<nn::UnaryModule>("b", m);
    }
    Tensor forward(const Tensor& x) override { return b->forward(a->forward(x)); }
  };
  Twice twice(std::make_shared<nn::Linear>(3, 3));
  int calls = 0;
  std::shared_ptr<Scaled> wrapper;
  int replaced = twice.replace_modules<nn::Linear>(
      [&](const std::string&, std::shared_ptr<nn::Linear> linear) {
        ++calls;
        wrapper = std::make_shared<Scaled>(linear, 1.0);
        return wrapper;
      });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(replaced, 2);
  EXPECT_EQ(twice.a.get(), wrapper);
  EXPECT_EQ(twice.b.get(), wrapper);
}

TEST(Surgery, Errors) {
  nn::TransformerEncoder model(small(), 2);
  expect_error([&] { model.get_submodule("layers.5.linear1"); },
               "get_submodule(\"layers.5.linear1\"): \"layers\" (ModuleList) has no child \"5\" "
               "(children: 0, 1)");
  expect_error([&] { model.get_submodule("encoder"); },
               "get_submodule(\"encoder\"): the model (TransformerEncoder) has no child "
               "\"encoder\" (children: layers)");
  expect_error([&] { model.get_submodule("layers.0.linear2.weight"); },
               "\"layers.0.linear2\" (Linear) has no child \"weight\" (it has no children)");
  expect_error([&] { model.replace_module("layers.0.nope", std::make_shared<nn::ReLU>()); },
               "\"layers.0\" (TransformerEncoderLayer) has no child \"nope\"");
  expect_error(
      [&] { model.replace_module("layers.1.self_attn", std::make_shared<nn::Linear>(8, 8)); },
      "replace_module: \"layers.1.self_attn\" must be a MultiheadAttention "
      "(TransformerEncoderLayer calls it as one); a Linear is not");
  expect_error(
      [&] {
        model.replace_module("layers.1.linear1", std::make_shared<nn::MultiheadAttention>(8, 2));
      },
      "replace_module: \"layers.1.linear1\" must be a UnaryModule (TransformerEncoderLayer calls "
      "it as one); a MultiheadAttention is not");
  expect_error([&] { model.replace_module("", std::make_shared<nn::ReLU>()); },
               "replace_module: the path is empty");
  expect_error([&] { model.replace_module("norm", nullptr); },
               "replace_module: the module for \"norm\" is null");

  // one bad replacement and nothing is replaced
  auto names = model.state_dict().size();
  expect_error(
      [&] {
        model.replace_modules<nn::Module>(
            [](const std::string& path,
               std::shared_ptr<nn::Module>) -> std::shared_ptr<nn::Module> {
              return path == "layers.1.linear2" || path == "layers.1.self_attn"
                         ? std::make_shared<nn::ReLU>()
                         : nullptr;
            });
      },
      "\"layers.1.self_attn\" must be a MultiheadAttention");
  EXPECT_EQ(model.state_dict().size(), names);
  EXPECT_NE(std::dynamic_pointer_cast<nn::Linear>(model.get_submodule("layers.1.linear2")),
            nullptr);

  // a child held as a plain pointer (register_module) cannot be replaced
  struct Plain : nn::UnaryModule {
    std::shared_ptr<nn::Linear> fc;
    Plain() { fc = register_module("fc", std::make_shared<nn::Linear>(2, 2)); }
    Tensor forward(const Tensor& x) override { return fc->forward(x); }
    std::string type_name() const override { return "Plain"; }
  };
  Plain plain;
  expect_error([&] { plain.replace_module("fc", std::make_shared<nn::Linear>(2, 2)); },
               "replace_module: \"fc\" is held by Plain as a plain pointer (register_module); "
               "register it with register_slot to make it replaceable");
  nn::Slot<nn::UnaryModule> empty;
  EXPECT_FALSE(empty);
  EXPECT_EQ(empty.get(), nullptr);
  expect_error([&] { empty->forward(zeros({1})); }, "Slot: the slot is empty");
}
