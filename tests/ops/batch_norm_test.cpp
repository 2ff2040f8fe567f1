// batch_norm family: values from tests/fixtures/batch_norm.py (PyTorch), f64 gradchecks,
// non-contiguous inputs, the running-stat update, the parallel paths, and error cases.
#include <gtest/gtest.h>

#include "expect_error.h"
#include "moxing/ops/batch_norm.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::expect_error;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;

namespace {

// inputs x, running_mean, running_var, weight, bias; the stats are cloned so that a training
// step leaves the fixture inputs as loaded
OpCase bn(const std::string& name, bool training, double momentum = 0.1, double eps = 1e-5) {
  return {name, [=](const V& x) {
            return batch_norm(x[0], x[1].clone(), x[2].clone(), x[3], x[4], training, momentum,
                              eps);
          }};
}

// the running stat (1 = mean, 2 = var) after one training step with momentum 0.2
OpCase running(const std::string& name, size_t pick) {
  OpCase c{name, [=](const V& x) {
             V s = {x[1].clone(), x[2].clone()};
             batch_norm(x[0], s[0], s[1], x[3], x[4], true, 0.2);
             return s[pick - 1];
           }};
  c.gradcheck = false;
  return c;
}

}  // namespace

MOXING_OP_CASES(
    "batch_norm",
    std::vector<OpCase>{
        bn("batch_norm_train_2d", true),
        bn("batch_norm_train_3d", true),
        bn("batch_norm_train_4d", true),
        bn("batch_norm_train_momentum_eps", true, 0.3, 1e-3),
        {"batch_norm_train_no_affine",
         [](const V& x) { return batch_norm(x[0], x[1].clone(), x[2].clone(), {}, {}, true); }},
        {"batch_norm_train_no_running",
         [](const V& x) { return batch_norm(x[0], {}, {}, x[1], x[2], true); }},
        {"batch_norm_train_weight_only",
         [](const V& x) { return batch_norm(x[0], {}, {}, x[1], {}, true); }},
        bn("batch_norm_eval_2d", false),
        bn("batch_norm_eval_4d", false, 0.1, 1e-2),
        {"batch_norm_eval_no_affine", [](const V& x) { return batch_norm(x[0], x[1], x[2]); }},
        running("batch_norm_running_mean_2d", 1),
        running("batch_norm_running_var_2d", 2),
        running("batch_norm_running_mean_4d", 1),
        running("batch_norm_running_var_4d", 2),
    });

namespace {

// the same batch norm written with reduction and elementwise ops, x (B,C,L)
Tensor batch_norm_composite(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  Tensor m = mean(x, {0, 2}, true);
  Tensor v = var(x, {0, 2}, 0, true);
  Tensor y = div(sub(x, m), sqrt(add(v, eps)));
  return add(mul(y, w.reshape({1, -1, 1})), b.reshape({1, -1, 1}));
}

}  // namespace

TEST(BatchNorm, LargeInputMatchesCompositeIncludingGradients) {
  // enough channels that forward and backward run on several threads
  Generator gen(21);
  Tensor x = randn({16, 64, 40}, DType::f64, &gen).requires_grad_();
  Tensor w = randn({64}, DType::f64, &gen).requires_grad_();
  Tensor b = randn({64}, DType::f64, &gen).requires_grad_();
  Tensor g = randn({16, 64, 40}, DType::f64, &gen);
  batch_norm(x, {}, {}, w, b, true).backward(g);
  Tensor gx = x.grad(), gw = w.grad(), gb = b.grad();
  x.zero_grad();
  w.zero_grad();
  b.zero_grad();
  Tensor ref = batch_norm_composite(x, w, b, 1e-5);
  ref.backward(g);
  NoGradGuard no_grad;
  EXPECT_EQ(moxing::testing::compare(batch_norm(x, {}, {}, w, b, true), ref, 1e-12, 1e-10), "");
  EXPECT_EQ(moxing::testing::compare(gx, x.grad(), 1e-10, 1e-9), "");
  EXPECT_EQ(moxing::testing::compare(gw, w.grad(), 1e-10, 1e-9), "");
  EXPECT_EQ(moxing::testing::compare(gb, b.grad(), 1e-10, 1e-9), "");
}

TEST(BatchNorm, SameResultForAnyThreadCount) {
  Generator gen(22);
  Tensor x = randn({8, 48, 50}, DType::f32, &gen).requires_grad_();
  Tensor w = randn({48}, DType::f32, &gen).requires_grad_();
  Tensor g = randn({8, 48, 50}, DType::f32, &gen);
  int before = num_threads();
  std::vector<std::vector<float>> runs;
  for (int t : {1, 2, 3}) {
    set_num_threads(t);
    x.zero_grad();
    w.zero_grad();
    Tensor rm = zeros({48}), rv = ones({48});
    batch_norm(x, rm, rv, w, {}, true).backward(g);
    std::vector<float> r = x.grad().to_vector<float>();
    for (const Tensor& t2 : {w.grad(), rm, rv}) {
      std::vector<float> v = t2.to_vector<float>();
      r.insert(r.end(), v.begin(), v.end());
    }
    runs.push_back(r);
  }
  set_num_threads(before);
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

TEST(BatchNorm, TrainingUpdatesRunningStatsInPlaceWithoutRecording) {
  // x (4,2): channel 0 holds 1,2,3,4 (mean 2.5, unbiased var 5/3), channel 1 holds 0 x 4
  Tensor x = from_vector(std::vector<float>{1, 0, 2, 0, 3, 0, 4, 0}, {4, 2}).requires_grad_();
  Tensor rm = zeros({2}), rv = ones({2});
  uint32_t vm = rm.version(), vv = rv.version();
  Tensor y = batch_norm(x, rm, rv, {}, {}, true, 0.5);
  EXPECT_GT(rm.version(), vm);
  EXPECT_GT(rv.version(), vv);
  EXPECT_FALSE(rm.requires_grad());
  EXPECT_TRUE(rm.is_leaf());
  EXPECT_NEAR(rm.to_vector<float>()[0], 1.25f, 1e-6);
  EXPECT_NEAR(rm.to_vector<float>()[1], 0.0f, 1e-6);
  EXPECT_NEAR(rv.to_vector<float>()[0], 0.5f + 0.5f * 5.0f / 3.0f, 1e-6);
  EXPECT_NEAR(rv.to_vector<float>()[1], 0.5f, 1e-6);
  // eval reads the stats and leaves them alone
  uint32_t v2 = rm.version();
  batch_norm(x, rm, rv, {}, {}, false);
  EXPECT_EQ(rm.version(), v2);
}

TEST(BatchNorm, UpdatesNonContiguousRunningStats) {
  Tensor buf_m = zeros({3, 2}), buf_v = ones({3, 2});
  Tensor rm = select(buf_m, 1, 0), rv = select(buf_v, 1, 1);
  ASSERT_FALSE(rm.is_contiguous());
  Tensor x = from_vector(std::vector<float>{0, 1, 2, 2, 3, 4}, {2, 3});
  batch_norm(x, rm, rv, {}, {}, true, 1.0);
  EXPECT_EQ(rm.to_vector<float>(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(rv.to_vector<float>(), (std::vector<float>{2, 2, 2}));
  EXPECT_EQ(select(buf_m, 1, 1).to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(select(buf_v, 1, 0).to_vector<float>(), (std::vector<float>{1, 1, 1}));
}

TEST(BatchNorm, Errors) {
  expect_error([] { batch_norm(zeros({4}), {}, {}, {}, {}, true); },
               "batch_norm: input of shape [4] has no channel dim");
  expect_error(
      [] {
        batch_norm(zeros({4, 3}), {}, {}, ones({2}), {}, true);
      },
      "batch_norm: weight of shape [2] does not match the 3 channels of input [4, 3]");
  expect_error(
      [] {
        batch_norm(zeros({4, 3, 2}), zeros({3}), ones({3, 1}), {}, {}, true);
      },
      "batch_norm: running_var of shape [3, 1] does not match the 3 channels of input "
      "[4, 3, 2]");
  expect_error(
      [] {
        batch_norm(zeros({4, 3}), {}, {}, {}, ones({3}, DType::f64), true);
      },
      "batch_norm: bias dtype f64 differs from input dtype f32");
  expect_error(
      [] {
        batch_norm(zeros({4, 3}), {}, {});
      },
      "batch_norm: running_mean and running_var are required in evaluation mode");
  expect_error(
      [] {
        batch_norm(zeros({4, 3}), zeros({3}), {}, {}, {}, true);
      },
      "batch_norm: running_mean and running_var must be given together");
  expect_error(
      [] {
        batch_norm(zeros({1, 3}), {}, {}, {}, {}, true);
      },
      "batch_norm: expected more than 1 value per channel when training, got input of "
      "shape [1, 3]");
  expect_error(
      [] {
        batch_norm(zeros({4, 3}, DType::i64), {}, {}, {}, {}, true);
      },
      "batch_norm: input must be floating-point, got i64");
}
