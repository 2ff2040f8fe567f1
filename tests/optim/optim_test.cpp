// Optimizers against PyTorch: 20-step parameter trajectories on the f64 problem of
// tests/fixtures/optim.py (every parameter at every step within 1e-6 relative), the fused
// Adam kernel against the composite path, state_dict round trips (bitwise), gradient
// clipping against torch.nn.utils, and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "expect_error.h"
#include "moxing/moxing.h"
#include "moxing/optim/adagrad.h"
#include "moxing/optim/adam.h"
#include "moxing/optim/clip.h"
#include "moxing/optim/optimizer.h"
#include "moxing/optim/rmsprop.h"
#include "moxing/optim/sgd.h"

using namespace moxing;
using moxing::testing::expect_error;
using nlohmann::json;
using optim::Hyper;
using optim::ParamGroup;

namespace {

const json& fixture() {
  static const json j = [] {
    std::ifstream f(MOXING_FIXTURE_DIR "/optim.json");
    return json::parse(f);
  }();
  return j;
}

Tensor f64(const json& values, Shape shape = {}) {
  return from_vector<double>(values.get<std::vector<double>>(), shape);
}

// loss(x, W) = sum((A x - b)^2) + 0.1 sum(x^4) + sum((W c - d)^2) + 0.1 sum(W^4)
struct Problem {
  Tensor A, b, c, d, x0, W0;
  Problem() {
    const json& p = fixture()["problem"];
    A = f64(p["A"], p["A_shape"].get<Shape>());
    b = f64(p["b"]);
    c = f64(p["c"]);
    d = f64(p["d"]);
    x0 = f64(p["x0"]);
    W0 = f64(p["W0"], p["W_shape"].get<Shape>());
  }
  Tensor loss(const Tensor& x, const Tensor& W) const {
    Tensor ax = sum(mul(A, x.unsqueeze(0)), {1});
    Tensor wc = sum(mul(W, c.unsqueeze(0)), {1});
    return sum(pow(ax - b, 2.0)) + 0.1 * sum(pow(x, 4.0)) + sum(pow(wc - d, 2.0)) +
           0.1 * sum(pow(W, 4.0));
  }
  std::vector<Tensor> fresh_params() const {
    return {x0.clone().requires_grad_(), W0.clone().requires_grad_()};
  }
  void step(optim::Optimizer& opt, std::vector<Tensor>& params) const {
    opt.zero_grad();
    loss(params[0], params[1]).backward();
    opt.step();
  }
};

// The optimizer a fixture case describes, through make_optimizer.
std::unique_ptr<optim::Optimizer> make_case(const json& c, const std::vector<Tensor>& params,
                                            const Hyper& extra = {}) {
  Hyper defaults = c["defaults"].get<Hyper>();
  for (const auto& [k, v] : extra) defaults[k] = v;
  const std::string name = c["optimizer"];
  if (c["groups"].is_null()) return optim::make_optimizer(name, params, defaults);
  std::vector<ParamGroup> groups;
  for (const auto& g : c["groups"]) {
    ParamGroup pg;
    for (int64_t i : g["params"].get<std::vector<int64_t>>()) pg.params.push_back(params[i]);
    pg.options = g["options"].get<Hyper>();
    groups.push_back(pg);
  }
  return optim::make_optimizer(name, groups, defaults);
}

std::vector<std::string> optimizer_cases() {
  std::vector<std::string> names;
  for (const auto& [k, v] : fixture()["optimizers"].items()) names.push_back(k);
  return names;
}

// Runs a fixture case and checks every parameter at every step within 1e-6 relative.
void check_trajectory(const std::string& name, const Hyper& extra) {
  const json& c = fixture()["optimizers"][name];
  Problem pr;
  auto params = pr.fresh_params();
  auto opt = make_case(c, params, extra);
  const json& traj = c["trajectory"];
  for (size_t s = 0; s < traj.size(); ++s) {
    pr.step(*opt, params);
    for (size_t k = 0; k < params.size(); ++k) {
      auto got = params[k].to_vector<double>();
      auto want = traj[s][k].get<std::vector<double>>();
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_LE(std::abs(got[i] - want[i]), 1e-6 * std::abs(want[i]) + 1e-12)
            << name << ": step " << s + 1 << ", param " << k << ", element " << i << ": got "
            << got[i] << ", torch " << want[i];
      }
    }
  }
}

class Trajectory : public ::testing::TestWithParam<std::string> {};

TEST_P(Trajectory, FusedMatchesTorch) { check_trajectory(GetParam(), {{"fused", 1}}); }

TEST_P(Trajectory, CompositeMatchesTorch) { check_trajectory(GetParam(), {{"fused", 0}}); }

INSTANTIATE_TEST_SUITE_P(Optim, Trajectory, ::testing::ValuesIn(optimizer_cases()),
                         [](const auto& info) { return info.param; });

// ---- the fused kernels against the composite path, f32 and f64, on a larger parameter

void fused_matches_composite(const std::string& name, const Hyper& options, DType dtype,
                             double rtol) {
  SCOPED_TRACE(name + " " + dtype_name(dtype));
  Tensor w0 = randn({257, 33}, dtype);
  std::vector<Tensor> grads;
  for (int s = 0; s < 6; ++s) grads.push_back(randn({257, 33}, dtype));
  Tensor out[2];
  for (int fused = 0; fused < 2; ++fused) {
    Tensor w = w0.clone().requires_grad_();
    Hyper h = options;
    h["fused"] = fused;
    auto opt = optim::make_optimizer(name, {w}, h);
    for (const auto& g : grads) {
      w.set_grad(g.clone());
      opt->step();
    }
    out[fused] = w.detach().to(DType::f64);
  }
  auto a = out[0].to_vector<double>();
  auto b = out[1].to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_LE(std::abs(a[i] - b[i]), rtol * std::abs(a[i]) + rtol) << "element " << i;
  }
}

const std::vector<std::pair<std::string, Hyper>> kFusedCases = {
    {"adamw", {{"lr", 0.01}, {"weight_decay", 0.1}, {"beta1", 0.85}}},
    {"adamw", {{"lr", 0.01}, {"amsgrad", 1}, {"maximize", 1}}},
    {"adamw", {{"lr", 0.01}, {"beta1", 0.3}}},  // lerp's other branch, in the f32 fast loop
    {"adam", {{"lr", 0.01}}},
    {"adam", {{"lr", 0.01}, {"weight_decay", 0.1}, {"amsgrad", 1}}},
    {"sgd", {{"lr", 0.01}}},
    {"sgd", {{"lr", 0.01}, {"momentum", 0.9}, {"dampening", 0.2}, {"weight_decay", 0.1}}},
    {"sgd", {{"lr", 0.01}, {"momentum", 0.9}, {"nesterov", 1}, {"maximize", 1}}},
    {"rmsprop", {{"lr", 0.01}, {"weight_decay", 0.1}}},
    {"rmsprop", {{"lr", 0.01}, {"centered", 1}, {"momentum", 0.5}, {"maximize", 1}}},
    {"adagrad", {{"lr", 0.1}, {"lr_decay", 0.1}, {"weight_decay", 0.1}}},
    {"adagrad", {{"lr", 0.1}, {"initial_accumulator_value", 0.5}, {"maximize", 1}}},
};

TEST(Fused, MatchesCompositeF64) {
  for (const auto& [name, options] : kFusedCases) {
    fused_matches_composite(name, options, DType::f64, 1e-14);
  }
}

TEST(Fused, MatchesCompositeF32) {
  for (const auto& [name, options] : kFusedCases) {
    fused_matches_composite(name, options, DType::f32, 1e-6);
  }
}

TEST(Fused, NonContiguousParamUsesCompositePath) {
  Tensor base = randn({6, 8}, DType::f64);
  Tensor w = base.t().contiguous().t().detach().requires_grad_();  // transposed strides
  ASSERT_FALSE(w.is_contiguous());
  Tensor ref = base.clone().requires_grad_();
  optim::AdamW a({w}, {.lr = 0.1});
  optim::AdamW b({ref}, {.lr = 0.1, .fused = false});
  Tensor g = randn({6, 8}, DType::f64);
  for (int s = 0; s < 3; ++s) {
    w.set_grad(g.clone());
    ref.set_grad(g.clone());
    a.step();
    b.step();
  }
  EXPECT_EQ(w.to_vector<double>(), ref.to_vector<double>());
}

// ---- state_dict: 5 steps, save, load into a fresh optimizer, 5 more == 10 steps (bitwise)

void check_round_trip(const std::string& name, const Hyper& extra) {
  const json& c = fixture()["optimizers"][name];
  Problem pr;
  auto straight = pr.fresh_params();
  auto opt_a = make_case(c, straight, extra);
  for (int s = 0; s < 10; ++s) pr.step(*opt_a, straight);

  auto first = pr.fresh_params();
  auto opt_b = make_case(c, first, extra);
  for (int s = 0; s < 5; ++s) pr.step(*opt_b, first);
  optim::OptimizerState saved = opt_b->state_dict();
  // what a file would hold: copies of the tensors, the JSON as text
  optim::OptimizerState copy;
  for (const auto& [k, t] : saved.tensors) copy.tensors.emplace_back(k, t.clone());
  copy.hyper = json::parse(saved.hyper.dump());

  std::vector<Tensor> resumed;
  for (const auto& p : first) resumed.push_back(p.detach().clone().requires_grad_());
  Hyper other_lr = extra;
  other_lr["lr"] = 123.0;  // the lr comes back from the state
  auto opt_c = make_case(c, resumed, other_lr);
  opt_c->load_state_dict(copy);
  for (int s = 0; s < 5; ++s) pr.step(*opt_c, resumed);
  for (size_t k = 0; k < straight.size(); ++k) {
    auto a = straight[k].to_vector<double>();
    auto b = resumed[k].to_vector<double>();
    ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)), 0)
        << name << ": param " << k << " differs after resuming";
  }
}

TEST(StateDict, RoundTripIsBitwise) {
  for (const char* name : {"sgd_momentum", "sgd_groups", "adam_amsgrad", "adamw_groups",
                           "rmsprop_centered_momentum", "adagrad_lr_decay"}) {
    SCOPED_TRACE(name);
    check_round_trip(name, {{"fused", 1}});
    check_round_trip(name, {{"fused", 0}});
  }
}

TEST(StateDict, NamesAndHyperParameters) {
  Problem pr;
  auto params = pr.fresh_params();
  optim::AdamW opt({{{params[0]}, {{"weight_decay", 0.1}}}, {{params[1]}, {{"lr", 0.02}}}},
                   {.lr = 0.05, .amsgrad = true});
  pr.step(opt, params);
  optim::OptimizerState st = opt.state_dict();
  std::vector<std::string> names;
  for (const auto& [k, t] : st.tensors) names.push_back(k);
  std::vector<std::string> want = {
      "state.0.exp_avg", "state.0.exp_avg_sq", "state.0.max_exp_avg_sq", "state.0.step",
      "state.1.exp_avg", "state.1.exp_avg_sq", "state.1.max_exp_avg_sq", "state.1.step"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(st.hyper["optimizer"], "adamw");
  EXPECT_EQ(st.hyper["param_groups"][0]["weight_decay"], 0.1);
  EXPECT_EQ(st.hyper["param_groups"][0]["lr"], 0.05);
  EXPECT_EQ(st.hyper["param_groups"][1]["weight_decay"], 0.01);
  EXPECT_EQ(st.hyper["param_groups"][1]["lr"], 0.02);
  EXPECT_EQ(st.hyper["param_groups"][1]["params"], json::array({1}));
  EXPECT_EQ(st.tensors[3].second.item<double>(), 1.0);
}

// ---- behaviour of the base class

TEST(Optimizer, ZeroGradAndMissingGradients) {
  Tensor a = ones({3}, DType::f64).requires_grad_();
  Tensor b = ones({2}, DType::f64).requires_grad_();
  optim::SGD opt({a, b}, {.lr = 0.5});
  a.set_grad(full({3}, 2.0, DType::f64));
  opt.step();  // b has no gradient: skipped
  EXPECT_EQ(a.to_vector<double>(), std::vector<double>(3, 0.0));
  EXPECT_EQ(b.to_vector<double>(), std::vector<double>(2, 1.0));
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_TRUE(a.requires_grad());
  EXPECT_TRUE(a.is_leaf());
}

TEST(Optimizer, GroupLrIsMutable) {
  Tensor a = ones({2}, DType::f64).requires_grad_();
  optim::SGD opt({a}, {.lr = 0.5});
  ASSERT_EQ(opt.param_groups().size(), 1u);
  EXPECT_EQ(opt.param_groups()[0].lr(), 0.5);
  opt.param_groups()[0].set_lr(0.25);
  a.set_grad(ones({2}, DType::f64));
  opt.step();
  EXPECT_EQ(a.to_vector<double>(), std::vector<double>(2, 0.75));
  EXPECT_EQ(opt.param_groups()[0].get("momentum"), 0.0);
}

TEST(Optimizer, AddParamGroupFillsDefaults) {
  Tensor a = ones({2}).requires_grad_();
  Tensor b = ones({2}).requires_grad_();
  optim::RMSprop opt({a}, {.lr = 0.1, .momentum = 0.5});
  opt.add_param_group({{b}, {{"lr", 0.2}}});
  ASSERT_EQ(opt.param_groups().size(), 2u);
  EXPECT_EQ(opt.param_groups()[1].lr(), 0.2);
  EXPECT_EQ(opt.param_groups()[1].get("momentum"), 0.5);
  EXPECT_EQ(opt.num_params(), 2u);
}

TEST(Optimizer, F32ParamsWork) {
  // the same problem in f32 stays close to the f64 torch trajectory
  const json& c = fixture()["optimizers"]["adamw"];
  Problem pr;
  Tensor A = pr.A.to(DType::f32), b = pr.b.to(DType::f32), cc = pr.c.to(DType::f32),
         d = pr.d.to(DType::f32);
  Tensor x = pr.x0.to(DType::f32).requires_grad_(), W = pr.W0.to(DType::f32).requires_grad_();
  auto opt = make_case(c, {x, W});
  for (int s = 0; s < 20; ++s) {
    opt->zero_grad();
    Tensor l = sum(pow(sum(mul(A, x.unsqueeze(0)), {1}) - b, 2.0)) + 0.1 * sum(pow(x, 4.0)) +
               sum(pow(sum(mul(W, cc.unsqueeze(0)), {1}) - d, 2.0)) + 0.1 * sum(pow(W, 4.0));
    l.backward();
    opt->step();
  }
  auto got = x.to_vector<double>();
  auto want = c["trajectory"][19][0].get<std::vector<double>>();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4);
}

// ---- gradient clipping, against torch.nn.utils (fixture "clip_grad_norm", "clip_grad_value")

std::vector<Tensor> params_with_grads(const json& c, DType dtype) {
  std::vector<Tensor> ps;
  for (size_t i = 0; i < c["grads"].size(); ++i) {
    Shape shape = c["shapes"][i].get<Shape>();
    Tensor p = zeros(shape, dtype).requires_grad_();
    p.set_grad(f64(c["grads"][i], shape).to(dtype));
    ps.push_back(p);
  }
  return ps;
}

TEST(Clip, GradNormMatchesTorch) {
  for (const auto& [name, c] : fixture()["clip_grad_norm"].items()) {
    double norm_type = c["norm_type"].is_string() ? optim::kInf : c["norm_type"].get<double>();
    for (auto [dtype, key, rtol] :
         {std::tuple{DType::f64, "f64", 1e-12}, std::tuple{DType::f32, "f32", 2e-6}}) {
      SCOPED_TRACE(name + std::string(" ") + key);
      auto ps = params_with_grads(c, dtype);
      double total = optim::clip_grad_norm_(ps, c["max_norm"].get<double>(), norm_type);
      double want = c[key]["total_norm"].get<double>();
      EXPECT_NEAR(total, want, rtol * want);
      for (size_t i = 0; i < ps.size(); ++i) {
        auto got = ps[i].grad().to_vector<double>();
        auto ref = c[key]["clipped"][i].get<std::vector<double>>();
        for (size_t k = 0; k < got.size(); ++k) {
          EXPECT_NEAR(got[k], ref[k], rtol * std::abs(ref[k]) + 1e-12);
        }
      }
    }
  }
}

TEST(Clip, GradValueMatchesTorch) {
  const json& c = fixture()["clip_grad_value"];
  auto ps = params_with_grads(c, DType::f64);
  ps.push_back(zeros({2}, DType::f64).requires_grad_());  // no gradient: skipped
  optim::clip_grad_value_(ps, c["clip_value"].get<double>());
  for (size_t i = 0; i + 1 < ps.size(); ++i) {
    EXPECT_EQ(ps[i].grad().to_vector<double>(), c["clipped"][i].get<std::vector<double>>());
  }
  EXPECT_FALSE(ps.back().grad().defined());
}

TEST(Clip, NoGradientsAndNonFinite) {
  Tensor p = zeros({2}).requires_grad_();
  EXPECT_EQ(optim::clip_grad_norm_({p}, 1.0), 0.0);
  p.set_grad(from_vector<float>({1.0f, std::nanf("")}));
  EXPECT_TRUE(std::isnan(optim::clip_grad_norm_({p}, 1.0)));
  p.set_grad(from_vector<float>({1.0f, INFINITY}));
  EXPECT_THROW(optim::clip_grad_norm_({p}, 1.0, 2.0, true), Error);
}

// ---- errors

TEST(Errors, BadHyperParameters) {
  Tensor p = ones({2}).requires_grad_();
  expect_error([&] { optim::SGD({p}, {.lr = -0.1}); }, "sgd: invalid learning rate -0.1");
  expect_error([&] { optim::SGD({p}, {.lr = 0.1, .nesterov = true}); },
               "sgd: nesterov momentum requires");
  expect_error(
      [&] { optim::SGD({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
      "sgd: nesterov momentum requires");
  expect_error([&] { optim::Adam({p}, {.beta1 = 1.0}); },
               "adam: invalid beta1 1 (must be in [0, 1))");
  expect_error([&] { optim::AdamW({p}, {.beta2 = -0.5}); }, "adamw: invalid beta2 -0.5");
  expect_error([&] { optim::AdamW({p}, {.eps = -1.0}); }, "adamw: invalid epsilon -1");
  expect_error([&] { optim::Adam({p}, {.weight_decay = -0.1}); },
               "adam: invalid weight_decay -0.1");
  expect_error([&] { optim::RMSprop({p}, {.alpha = -0.9}); }, "rmsprop: invalid alpha -0.9");
  expect_error([&] { optim::RMSprop({p}, {.momentum = -1}); }, "rmsprop: invalid momentum -1");
  expect_error([&] { optim::Adagrad({p}, {.lr_decay = -0.5}); }, "adagrad: invalid lr_decay -0.5");
  expect_error([&] { optim::Adagrad({p}, {.initial_accumulator_value = -1}); },
               "adagrad: invalid initial_accumulator_value -1");
  // a bad override in one group is caught too
  expect_error(
      [&] {
        optim::AdamW({{{p}, {{"lr", -1.0}}}}, {.lr = 0.1});
      },
      "adamw: invalid learning rate -1");
}

TEST(Errors, BadNamesAndParameters) {
  Tensor p = ones({2}).requires_grad_();
  expect_error([&] { optim::make_optimizer("adamx", {p}); },
               "unknown optimizer 'adamx' (valid: sgd, adam, adamw, rmsprop, adagrad)");
  expect_error(
      [&] {
        optim::make_optimizer("sgd", {p}, {{"momentom", 0.9}});
      },
      "sgd: unknown option 'momentom'");
  expect_error(
      [&] {
        optim::AdamW({{{p}, {{"betas", 0.9}}}});
      },
      "adamw: unknown option 'betas' in a param group");
  expect_error([&] { optim::SGD(std::vector<Tensor>{}); }, "sgd: got an empty parameter list");
  expect_error(
      [&] {
        optim::SGD({{{p}, {}}, {{p}, {}}});
      },
      "sgd: a parameter appears more than once");
  expect_error([&] { optim::SGD({zeros({2}, DType::i64)}); },
               "sgd: parameters must be floating point");
  Tensor q = ones({2}).requires_grad_();
  expect_error([&] { optim::SGD({mul(q, 2.0)}); }, "sgd: can't optimize a non-leaf tensor");
  optim::SGD opt({p});
  expect_error([&] { opt.param_groups()[0].set("beta1", 0.9); },
               "param group has no option 'beta1'");
  // values changed after construction are checked at step()
  opt.param_groups()[0].set_lr(-1.0);
  expect_error([&] { opt.step(); }, "sgd: invalid learning rate -1");
  opt.param_groups()[0].set_lr(0.1);
  opt.param_groups()[0].params.push_back(q);
  expect_error([&] { opt.step(); },
               "sgd: the param groups hold 2 parameters but 1 were registered");
}

TEST(Errors, LoadStateDictMismatch) {
  Tensor a = ones({2}).requires_grad_();
  Tensor b = ones({3}).requires_grad_();
  optim::Adam opt({a});
  a.set_grad(ones({2}));
  opt.step();
  optim::OptimizerState st = opt.state_dict();
  optim::Adam two({{{a}, {}}, {{b}, {}}});
  expect_error([&] { two.load_state_dict(st); },
               "adam: load_state_dict: the state has 1 param groups, the optimizer 2");
  optim::Adam other({b});
  expect_error([&] { other.load_state_dict(st); },
               "adam: load_state_dict: 'state.0.exp_avg' has shape [2], parameter 0 has shape [3]");
  optim::SGD sgd({a});
  expect_error([&] { sgd.load_state_dict(st); },
               "sgd: load_state_dict: the state is from a \"adam\" optimizer");
}

}  // namespace
