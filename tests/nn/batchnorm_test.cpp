// BatchNorm1d / BatchNorm2d against torch (tests/fixtures/nn_transformer.py): outputs,
// gradients and updated running stats in train mode, running stats in eval; an f64 gradcheck;
// names, modes and errors.
#include <gtest/gtest.h>

#include "expect_error.h"
#include "moxing/nn/batchnorm.h"
#include "nn_transformer_fixture.h"

using namespace moxing;
using moxing::testing::check_layer_fixture;
using moxing::testing::expect_error;
using V = std::vector<Tensor>;

namespace {

template <class M>
moxing::testing::LayerFn unary(M& m) {
  return [&m](const V& x) { return V{m.forward(x[0])}; };
}

}  // namespace

TEST(BatchNorm1d, TrainMatchesTorch) {
  nn::BatchNorm1d a(4);
  check_layer_fixture("batchnorm1d_train_2d", a, true, unary(a));
  nn::BatchNorm1d b(3, 1e-5, 0.3);
  check_layer_fixture("batchnorm1d_train_3d", b, true, unary(b));
}

TEST(BatchNorm1d, CumulativeAverageWithoutMomentum) {
  nn::BatchNorm1d m(3, 1e-5, std::nullopt);
  check_layer_fixture("batchnorm1d_cumulative", m, true, unary(m));
  EXPECT_EQ(m.num_batches_tracked.item<int64_t>(), 4);
}

TEST(BatchNorm1d, EvalMatchesTorch) {
  nn::BatchNorm1d m(4);
  check_layer_fixture("batchnorm1d_eval", m, false, unary(m));
}

TEST(BatchNorm2d, TrainAndEvalMatchTorch) {
  nn::BatchNorm2d a(3);
  check_layer_fixture("batchnorm2d_train", a, true, unary(a));
  nn::BatchNorm2d b(3, 1e-3);
  check_layer_fixture("batchnorm2d_eval", b, false, unary(b));
}

TEST(BatchNorm2d, WithoutAffineOrRunningStatsUsesBatchStatsInEval) {
  nn::BatchNorm2d m(2, 1e-5, 0.1, false, false);
  EXPECT_TRUE(m.state_dict().empty());
  check_layer_fixture("batchnorm2d_no_affine_no_stats", m, false, unary(m));
}

TEST(BatchNorm, NamesAndInitialValuesAsTorch) {
  nn::BatchNorm2d m(3);
  std::vector<std::string> names;
  for (const auto& [k, t] : m.state_dict()) names.push_back(k);
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias", "running_mean", "running_var",
                                             "num_batches_tracked"}));
  EXPECT_EQ(m.parameters().size(), 2u);
  EXPECT_EQ(m.weight.to_vector<float>(), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(m.running_var.to_vector<float>(), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(m.num_batches_tracked.dtype(), DType::i64);
  EXPECT_EQ(m.num_batches_tracked.dim(), 0);
  EXPECT_EQ(m.extra_repr(), "3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True");
  nn::BatchNorm1d n(2, 1e-5, std::nullopt, false);
  EXPECT_EQ(n.extra_repr(), "2, eps=1e-05, momentum=None, affine=False, track_running_stats=True");
}

TEST(BatchNorm, EvalLeavesRunningStatsAndCounterAlone) {
  nn::BatchNorm1d m(2);
  Tensor x = from_vector(std::vector<float>{1, 5, 2, 6, 4, 9}, {3, 2});
  m.forward(x);
  EXPECT_EQ(m.num_batches_tracked.item<int64_t>(), 1);
  std::vector<float> mean_after = m.running_mean.to_vector<float>();
  EXPECT_NEAR(mean_after[0], 0.1f * 7.0f / 3.0f, 1e-6);
  m.eval();
  m.forward(x);
  EXPECT_EQ(m.num_batches_tracked.item<int64_t>(), 1);
  EXPECT_EQ(m.running_mean.to_vector<float>(), mean_after);
  m.reset_running_stats();
  EXPECT_EQ(m.running_mean.to_vector<float>(), (std::vector<float>{0, 0}));
  EXPECT_EQ(m.num_batches_tracked.item<int64_t>(), 0);
}

TEST(BatchNorm, GradcheckTrainModeInF64) {
  nn::BatchNorm2d m(3);
  m.to(DType::f64);
  Generator gen(5);
  {
    NoGradGuard no_grad;
    m.weight.copy_(randn({3}, DType::f64, &gen));
    m.bias.copy_(randn({3}, DType::f64, &gen));
  }
  Tensor x = randn({2, 3, 2, 3}, DType::f64, &gen).requires_grad_();
  auto r =
      autograd::gradcheck([&m](const V& in) { return m.forward(in[0]); }, {x, m.weight, m.bias});
  EXPECT_TRUE(r.ok) << r.message;
  nn::BatchNorm1d e(4);
  e.to(DType::f64);
  e.eval();
  {
    NoGradGuard no_grad;
    e.running_mean.copy_(randn({4}, DType::f64, &gen));
  }
  Tensor y = randn({3, 4, 2}, DType::f64, &gen).requires_grad_();
  r = autograd::gradcheck([&e](const V& in) { return e.forward(in[0]); }, {y, e.weight, e.bias});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(BatchNorm, Errors) {
  nn::BatchNorm1d m1(3);
  nn::BatchNorm2d m2(3);
  expect_error(
      [&] {
        m1.forward(zeros({2, 3, 4, 5}));
      },
      "BatchNorm1d: expected 2D or 3D input, got shape [2, 3, 4, 5]");
  expect_error(
      [&] {
        m2.forward(zeros({2, 3, 4}));
      },
      "BatchNorm2d: expected 4D input (B,C,H,W), got shape [2, 3, 4]");
  expect_error(
      [&] {
        m1.forward(zeros({2, 4}));
      },
      "BatchNorm1d: input of shape [2, 4] has 4 channels, expected num_features = 3");
  expect_error(
      [&] {
        m1.forward(zeros({1, 3}));
      },
      "batch_norm: expected more than 1 value per channel when training");
}
