// Learning-rate schedulers against PyTorch: the lr of two param groups (and the cycled
// momentum / beta1 for OneCycleLR) for 40 steps, from tests/fixtures/optim.py, within 1e-9;
// the two warmup schedules against Hugging Face transformers' lambdas written out in that
// script. Also state_dict round trips and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "moxing/moxing.h"
#include "moxing/optim/adagrad.h"
#include "moxing/optim/adam.h"
#include "moxing/optim/rmsprop.h"
#include "moxing/optim/scheduler.h"
#include "moxing/optim/sgd.h"

using namespace moxing;
using namespace moxing::optim;
using nlohmann::json;

namespace {

const json& fixture() {
  static const json j = [] {
    std::ifstream f(MOXING_FIXTURE_DIR "/optim.json");
    return json::parse(f);
  }();
  return j;
}

// Two groups with lr 0.1 and 0.05, as in the fixture script.
std::unique_ptr<Optimizer> make_opt(const json& c) {
  Hyper options = c["optimizer_options"].get<Hyper>();
  std::vector<ParamGroup> groups = {{{zeros({2}).requires_grad_()}, {{"lr", 0.1}}},
                                    {{zeros({2}).requires_grad_()}, {{"lr", 0.05}}}};
  return make_optimizer(c["optimizer"], groups, options);
}

// One scheduler: the LRScheduler kinds, or a plateau scheduler (then `sched` is null).
struct Made {
  std::unique_ptr<LRScheduler> sched;
  std::unique_ptr<ReduceLROnPlateau> plateau;
};

Made make_sched(const std::string& name, const json& a, Optimizer& opt) {
  Made m;
  if (name == "step_lr") {
    m.sched = std::make_unique<StepLR>(opt, a["step_size"], a["gamma"]);
  } else if (name == "multistep_lr") {
    m.sched =
        std::make_unique<MultiStepLR>(opt, a["milestones"].get<std::vector<int64_t>>(), a["gamma"]);
  } else if (name == "exponential_lr") {
    m.sched = std::make_unique<ExponentialLR>(opt, a["gamma"]);
  } else if (name == "cosine_annealing_lr") {
    m.sched = std::make_unique<CosineAnnealingLR>(opt, a["T_max"], a["eta_min"]);
  } else if (name.rfind("cosine_with_warmup", 0) == 0) {
    m.sched = std::make_unique<CosineWithWarmupLR>(opt, a["num_warmup_steps"],
                                                   a["num_training_steps"], a["num_cycles"]);
  } else if (name == "linear_with_warmup") {
    m.sched =
        std::make_unique<LinearWithWarmupLR>(opt, a["num_warmup_steps"], a["num_training_steps"]);
  } else if (name.rfind("onecycle", 0) == 0) {
    OneCycleOptions o;
    o.max_lr = a["max_lr"].get<std::vector<double>>();
    o.total_steps = a["total_steps"];
    o.pct_start = a.value("pct_start", o.pct_start);
    o.anneal_strategy = a.value("anneal_strategy", o.anneal_strategy);
    o.three_phase = a.value("three_phase", o.three_phase);
    o.div_factor = a.value("div_factor", o.div_factor);
    o.final_div_factor = a.value("final_div_factor", o.final_div_factor);
    o.base_momentum = a.value("base_momentum", o.base_momentum);
    o.max_momentum = a.value("max_momentum", o.max_momentum);
    m.sched = std::make_unique<OneCycleLR>(opt, o);
  } else if (name.rfind("plateau", 0) == 0) {
    PlateauOptions o;
    o.mode = a.value("mode", o.mode);
    o.factor = a["factor"];
    o.patience = a["patience"];
    o.threshold = a["threshold"];
    o.threshold_mode = a.value("threshold_mode", o.threshold_mode);
    o.cooldown = a.value("cooldown", o.cooldown);
    o.min_lr = a["min_lr"].get<std::vector<double>>();
    m.plateau = std::make_unique<ReduceLROnPlateau>(opt, o);
  } else {
    ADD_FAILURE() << "no scheduler for fixture case " << name;
  }
  return m;
}

std::vector<double> momenta(const Optimizer& opt) {
  std::vector<double> out;
  const std::string key = opt.name() == "adam" ? "beta1" : "momentum";
  if (!opt.defaults().count(key)) return out;
  for (const auto& g : opt.param_groups()) out.push_back(g.get(key));
  return out;
}

void expect_close(const std::vector<double>& got, const json& want, const std::string& what) {
  auto w = want.get<std::vector<double>>();
  ASSERT_EQ(got.size(), w.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_LE(std::abs(got[i] - w[i]), 1e-9 * std::abs(w[i]) + 1e-15)
        << what << ", group " << i << ": got " << got[i] << ", torch " << w[i];
  }
}

std::vector<std::string> scheduler_cases() {
  std::vector<std::string> names;
  for (const auto& [k, v] : fixture()["schedulers"].items()) names.push_back(k);
  return names;
}

class Schedule : public ::testing::TestWithParam<std::string> {};

TEST_P(Schedule, MatchesTorch) {
  const json& c = fixture()["schedulers"][GetParam()];
  const json& metrics = fixture()["plateau_metrics"];
  auto opt = make_opt(c);
  Made m = make_sched(GetParam(), c["args"], *opt);
  auto last_lr = [&] { return m.sched ? m.sched->get_last_lr() : m.plateau->get_last_lr(); };
  expect_close(last_lr(), c["lr"][0], "after construction");
  expect_close(momenta(*opt), c["momentum"][0], "momentum after construction");
  for (size_t s = 1; s < c["lr"].size(); ++s) {
    opt->step();
    if (m.sched) {
      m.sched->step();
    } else {
      m.plateau->step(metrics[s - 1].get<double>());
    }
    expect_close(last_lr(), c["lr"][s], "step " + std::to_string(s));
    std::vector<double> group_lr;
    for (const auto& g : opt->param_groups()) group_lr.push_back(g.lr());
    EXPECT_EQ(group_lr, last_lr());
    expect_close(momenta(*opt), c["momentum"][s], "momentum at step " + std::to_string(s));
  }
}

INSTANTIATE_TEST_SUITE_P(Optim, Schedule, ::testing::ValuesIn(scheduler_cases()),
                         [](const auto& info) { return info.param; });

// Stop after 12 steps, save optimizer + scheduler state (through JSON text), rebuild both
// and continue: the lrs match the fixture to the end.
TEST(SchedulerState, RoundTrip) {
  const json& metrics = fixture()["plateau_metrics"];
  for (const char* name : {"cosine_annealing_lr", "onecycle_sgd", "multistep_lr",
                           "linear_with_warmup", "plateau_min"}) {
    SCOPED_TRACE(name);
    const json& c = fixture()["schedulers"][name];
    auto opt = make_opt(c);
    Made m = make_sched(name, c["args"], *opt);
    const size_t stop = 12;
    for (size_t s = 1; s <= stop; ++s) {
      if (m.sched) {
        m.sched->step();
      } else {
        m.plateau->step(metrics[s - 1].get<double>());
      }
    }
    OptimizerState opt_state = opt->state_dict();
    opt_state.hyper = json::parse(opt_state.hyper.dump());
    json sched_state =
        json::parse((m.sched ? m.sched->state_dict() : m.plateau->state_dict()).dump());

    auto opt2 = make_opt(c);
    Made m2 = make_sched(name, c["args"], *opt2);  // scheduler first, then load (as in torch)
    opt2->load_state_dict(opt_state);
    if (m2.sched) {
      m2.sched->load_state_dict(sched_state);
    } else {
      m2.plateau->load_state_dict(sched_state);
    }
    for (size_t s = stop + 1; s < c["lr"].size(); ++s) {
      if (m2.sched) {
        m2.sched->step();
        expect_close(m2.sched->get_last_lr(), c["lr"][s], "step " + std::to_string(s));
      } else {
        m2.plateau->step(metrics[s - 1].get<double>());
        expect_close(m2.plateau->get_last_lr(), c["lr"][s], "step " + std::to_string(s));
      }
      expect_close(momenta(*opt2), c["momentum"][s], "momentum at step " + std::to_string(s));
    }
  }
}

TEST(Scheduler, WarmupFactors) {
  EXPECT_EQ(linear_with_warmup_factor(0, 10, 100), 0.0);
  EXPECT_EQ(linear_with_warmup_factor(5, 10, 100), 0.5);
  EXPECT_EQ(linear_with_warmup_factor(10, 10, 100), 1.0);
  EXPECT_EQ(linear_with_warmup_factor(100, 10, 100), 0.0);
  EXPECT_EQ(linear_with_warmup_factor(150, 10, 100), 0.0);
  EXPECT_EQ(cosine_with_warmup_factor(10, 10, 100), 1.0);
  EXPECT_NEAR(cosine_with_warmup_factor(55, 10, 100), 0.5, 1e-15);
  EXPECT_NEAR(cosine_with_warmup_factor(100, 10, 100), 0.0, 1e-15);
}

TEST(Scheduler, Errors) {
  Tensor p = zeros({2}).requires_grad_();
  SGD sgd({p}, {.lr = 0.1, .momentum = 0.9});
  EXPECT_THROW(StepLR(sgd, 0), Error);
  EXPECT_THROW(CosineAnnealingLR(sgd, 0), Error);
  EXPECT_THROW(ReduceLROnPlateau(sgd, {.factor = 1.0}), Error);
  EXPECT_THROW(ReduceLROnPlateau(sgd, {.mode = "mean"}), Error);
  EXPECT_THROW(ReduceLROnPlateau(sgd, {.min_lr = {0.1, 0.2}}), Error);
  EXPECT_THROW(OneCycleLR(sgd, {.max_lr = {0.1}, .total_steps = 0}), Error);
  EXPECT_THROW(OneCycleLR(sgd, {.max_lr = {0.1}, .total_steps = 5, .anneal_strategy = "exp"}),
               Error);
  EXPECT_THROW(OneCycleLR(sgd, {.max_lr = {0.1, 0.2}, .total_steps = 5}), Error);
  Adagrad adagrad({p});
  try {
    OneCycleLR(adagrad, {.max_lr = {0.1}, .total_steps = 5});
    ADD_FAILURE() << "OneCycleLR accepted an optimizer without momentum";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer adagrad has no momentum or beta1"),
              std::string::npos)
        << e.what();
  }
  OneCycleLR ok(adagrad, {.max_lr = {0.1}, .total_steps = 2, .cycle_momentum = false});
  ok.step();
  ok.step();
  EXPECT_THROW(ok.step(), Error);
}

}  // namespace
