// Step counts live on the host: a step reads no tensor back (checked by stepping parameters on
// the meta device, where any read is an error), state_dict still writes each count as the 0-d
// f64 "state.<i>.step" that optimizer.safetensors has always held, and loading restores it.
#include <gtest/gtest.h>

#include "moxing/moxing.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;

namespace {

const char* const kCounting[] = {"adam", "adamw", "rmsprop", "adagrad"};

optim::Hyper hyper_for(const std::string& name) {
  optim::Hyper h = {{"lr", 0.01}};
  if (name == "rmsprop") {
    h["momentum"] = 0.9;
    h["centered"] = 1;
  }
  if (name == "adam") h["amsgrad"] = 1;
  return h;
}

}  // namespace

TEST(StepCount, StepsOnMetaParametersReadNoValues) {
  for (const char* name : {"sgd", "adam", "adamw", "rmsprop", "adagrad"}) {
    for (double fused : {0.0, 1.0}) {
      Tensor w = empty({8, 4}, kMeta).requires_grad_();
      Tensor b = empty({8}, kMeta).requires_grad_();
      optim::Hyper h = hyper_for(name);
      h["fused"] = fused;
      if (std::string(name) == "sgd") h["momentum"] = 0.9;
      auto opt = optim::make_optimizer(name, std::vector<Tensor>{w, b}, h);
      for (int i = 0; i < 3; ++i) {
        opt->zero_grad();
        w.set_grad(empty({8, 4}, kMeta));
        b.set_grad(empty({8}, kMeta));
        EXPECT_EQ(error_of([&] { opt->step(); }), "") << name << " fused=" << fused;
      }
      EXPECT_TRUE(w.is_meta());
      for (const auto& [key, t] : opt->state(0)) EXPECT_TRUE(t.is_meta()) << name << " " << key;
    }
  }
}

TEST(StepCount, KeptPerParameterOnTheHostAndSavedAsF64) {
  for (const char* name : kCounting) {
    Tensor p = from_vector<float>({0.5f, -1.0f, 2.0f}).requires_grad_();
    Tensor q = from_vector<float>({1.0f}).requires_grad_();
    auto opt = optim::make_optimizer(name, std::vector<Tensor>{p, q}, hyper_for(name));
    for (int i = 0; i < 3; ++i) {
      opt->zero_grad();
      Tensor loss = sum(p * p);
      if (i == 0) loss = loss + sum(q * q);  // q gets a gradient on the first step only
      loss.backward();
      opt->step();
    }
    EXPECT_EQ(opt->step_count(0), 3) << name;
    EXPECT_EQ(opt->step_count(1), 1) << name;
    EXPECT_EQ(opt->state(0).count("step"), 0u) << name;

    optim::OptimizerState st = opt->state_dict();
    std::map<std::string, Tensor> by_name(st.tensors.begin(), st.tensors.end());
    ASSERT_EQ(by_name.count("state.0.step"), 1u) << name;
    Tensor s = by_name["state.0.step"];
    EXPECT_EQ(s.dtype(), DType::f64);
    EXPECT_EQ(s.dim(), 0);
    EXPECT_EQ(s.item<double>(), 3.0);
    EXPECT_EQ(by_name["state.1.step"].item<double>(), 1.0);
    // the names keep their key order within a parameter, as before
    std::vector<std::string> names;
    for (const auto& [n, t] : st.tensors) names.push_back(n);
    EXPECT_TRUE(std::is_sorted(names.begin(), names.end())) << name;

    Tensor p2 = from_vector<float>({0.5f, -1.0f, 2.0f}).requires_grad_();
    Tensor q2 = from_vector<float>({1.0f}).requires_grad_();
    auto fresh = optim::make_optimizer(name, std::vector<Tensor>{p2, q2}, hyper_for(name));
    fresh->load_state_dict(st);
    EXPECT_EQ(fresh->step_count(0), 3) << name;
    EXPECT_EQ(fresh->step_count(1), 1) << name;
  }
}

TEST(StepCount, SgdSavesNoStep) {
  Tensor p = from_vector<float>({1.0f, 2.0f}).requires_grad_();
  optim::SGD opt(std::vector<Tensor>{p}, optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  sum(p * p).backward();
  opt.step();
  EXPECT_EQ(opt.step_count(0), 0);
  for (const auto& [n, t] : opt.state_dict().tensors) EXPECT_FALSE(contains(n, "step")) << n;
}

TEST(StepCount, BadSavedStepIsAnError) {
  Tensor p = from_vector<float>({1.0f}).requires_grad_();
  auto opt = optim::make_optimizer("adam", std::vector<Tensor>{p}, {{"lr", 0.1}});
  optim::OptimizerState st = opt->state_dict();
  st.tensors.emplace_back("state.0.step", scalar_tensor(-2.0, DType::f64));
  EXPECT_TRUE(contains(error_of([&] { opt->load_state_dict(st); }), "not a step count"));
  st.tensors.back().second = zeros({2}, DType::f64);
  EXPECT_TRUE(contains(error_of([&] { opt->load_state_dict(st); }), "expected one value"));
}

TEST(ClipGradNorm, ReadsTheTotalOnceAndNamesItselfOnMeta) {
  Tensor a = empty({3}, kMeta).requires_grad_();
  a.set_grad(empty({3}, kMeta));
  std::string err = error_of([&] { optim::clip_grad_norm_({a}, 1.0); });
  EXPECT_TRUE(contains(err, "clip_grad_norm_: a meta tensor has shapes only")) << err;
  // mixed dtypes and orders: the tensor combination equals the per-tensor formula
  Tensor x = from_vector<float>({3.0f, -4.0f}).requires_grad_();
  Tensor y = from_vector<double>({12.0}).requires_grad_();
  for (double p : {1.0, 2.0, 3.0, optim::kInf}) {
    x.set_grad(from_vector<float>({3.0f, -4.0f}));
    y.set_grad(from_vector<double>({12.0}));
    double expect = p == 1.0           ? 19.0
                    : p == 2.0         ? 13.0
                    : p == optim::kInf ? 12.0
                                       : std::cbrt(27.0 + 64.0 + 1728.0);
    EXPECT_NEAR(optim::clip_grad_norm_({x, y}, 1e9, p), expect, 1e-5) << p;
  }
}
