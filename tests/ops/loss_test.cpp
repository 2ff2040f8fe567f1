// Loss family: values from tests/fixtures/loss.py (PyTorch), f64 gradchecks, non-contiguous
// inputs (targets included), and error cases.
#include <gtest/gtest.h>

#include <cmath>

#include "expect_error.h"
#include "moxing/ops/loss.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::expect_error;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;
using R = Reduction;

namespace {

// nll_loss and cross_entropy check every target against C on cpu; on meta (shapes only) the
// check is skipped, as in torch.
OpCase row(const std::string& name, const std::function<Tensor(const V&)>& fn) {
  OpCase c{name, fn};
  return c;
}

}  // namespace

MOXING_OP_CASES(
    "loss",
    std::vector<OpCase>{
        row("nll_mean", [](const V& x) { return nll_loss(x[0], x[1]); }),
        row("nll_sum", [](const V& x) { return nll_loss(x[0], x[1], R::sum); }),
        row("nll_none", [](const V& x) { return nll_loss(x[0], x[1], R::none); }),
        row("nll_ignore", [](const V& x) { return nll_loss(x[0], x[1], R::mean, 2); }),
        row("nll_ignore_none", [](const V& x) { return nll_loss(x[0], x[1], R::none, -1); }),
        row("nll_3d", [](const V& x) { return nll_loss(x[0], x[1]); }),
        row("nll_4d_ignore", [](const V& x) { return nll_loss(x[0], x[1], R::mean, -100); }),
        row("nll_1d", [](const V& x) { return nll_loss(x[0], x[1]); }),
        row("ce_mean", [](const V& x) { return cross_entropy(x[0], x[1]); }),
        row("ce_sum", [](const V& x) { return cross_entropy(x[0], x[1], R::sum); }),
        row("ce_none", [](const V& x) { return cross_entropy(x[0], x[1], R::none); }),
        row("ce_ignore", [](const V& x) { return cross_entropy(x[0], x[1], R::mean, -100); }),
        row("ce_btc", [](const V& x) { return cross_entropy(x[0], x[1]); }),
        row("ce_smoothing",
            [](const V& x) { return cross_entropy(x[0], x[1], R::mean, -100, 0.1); }),
        row("ce_smoothing_ignore",
            [](const V& x) { return cross_entropy(x[0], x[1], R::mean, 1, 0.2); }),
        row("ce_smoothing_ignore_sum",
            [](const V& x) { return cross_entropy(x[0], x[1], R::sum, -100, 0.3); }),
        row("ce_smoothing_ignore_none",
            [](const V& x) { return cross_entropy(x[0], x[1], R::none, -100, 0.3); }),
        row("ce_smoothing_btc_ignore",
            [](const V& x) { return cross_entropy(x[0], x[1], R::mean, -100, 0.15); }),
        row("mse_mean", [](const V& x) { return mse_loss(x[0], x[1]); }),
        row("mse_sum", [](const V& x) { return mse_loss(x[0], x[1], R::sum); }),
        row("mse_none", [](const V& x) { return mse_loss(x[0], x[1], R::none); }),
        row("l1_mean", [](const V& x) { return l1_loss(x[0], x[1]); }),
        row("l1_sum", [](const V& x) { return l1_loss(x[0], x[1], R::sum); }),
        row("l1_none", [](const V& x) { return l1_loss(x[0], x[1], R::none); }),
        row("bce_logits_mean",
            [](const V& x) { return binary_cross_entropy_with_logits(x[0], x[1]); }),
        row("bce_logits_sum",
            [](const V& x) { return binary_cross_entropy_with_logits(x[0], x[1], R::sum); }),
        row("bce_logits_none",
            [](const V& x) { return binary_cross_entropy_with_logits(x[0], x[1], R::none); }),
        row("bce_logits_pos_weight",
            [](const V& x) { return binary_cross_entropy_with_logits(x[0], x[1], R::mean, x[2]); }),
    });

TEST(Loss, CrossEntropyEqualsNllOfLogSoftmax) {
  Generator gen(5);
  Tensor x = randn({64, 300}, DType::f64, &gen);
  Tensor t = randint(0, 300, {64}, DType::i64, &gen);
  double a = cross_entropy(x, t).item<double>();
  double b = nll_loss(sub(x, logsumexp(x, {1}, true)), t).item<double>();
  EXPECT_NEAR(a, b, 1e-12);
}

TEST(Loss, ReducedLossesAre0d) {
  Tensor x = randn({3, 4});
  Tensor t = from_vector<int64_t>({0, 3, 1});
  EXPECT_EQ(cross_entropy(x, t).dim(), 0);
  EXPECT_EQ(nll_loss(x, t, R::sum).dim(), 0);
  EXPECT_EQ(nll_loss(x, t, R::none).shape(), Shape({3}));
  EXPECT_EQ(mse_loss(x, x).dim(), 0);
  EXPECT_EQ(binary_cross_entropy_with_logits(x, x, R::sum).dim(), 0);
  EXPECT_EQ(nll_loss(x.select(0, 0), full({}, 2, DType::i64)).dim(), 0);
}

TEST(Loss, AllTargetsIgnoredGivesNanMean) {
  Tensor x = zeros({2, 3});
  Tensor t = full({2}, -100, DType::i64);
  EXPECT_TRUE(std::isnan(nll_loss(x, t).item<float>()));
  EXPECT_EQ(nll_loss(x, t, R::sum).item<float>(), 0.0f);
}

TEST(Loss, BceWithLogitsIsStableForHugeLogits) {
  Tensor x = tensor({-1000.0f, 1000.0f});
  Tensor t = tensor({1.0f, 0.0f});
  auto v = binary_cross_entropy_with_logits(x, t, R::none).to_vector<float>();
  EXPECT_FLOAT_EQ(v[0], 1000.0f);
  EXPECT_FLOAT_EQ(v[1], 1000.0f);
}

TEST(Loss, TargetOutOfRangeNamesValueAndClasses) {
  Tensor x = zeros({3, 5});
  expect_error(
      [&] {
        nll_loss(x, from_vector<int64_t>({0, 7, 1}));
      },
      "nll_loss: target 7 is out of range for C = 5 classes");
  expect_error(
      [&] {
        cross_entropy(x, from_vector<int64_t>({-3, 0, 1}));
      },
      "target -3 is out of range for C = 5 classes");
}

TEST(Loss, ShapeAndDtypeErrors) {
  expect_error(
      [] {
        nll_loss(zeros({3, 5}), zeros({3}, DType::i64).reshape({3, 1}));
      },
      "nll_loss: target shape [3, 1] does not match input shape [3, 5] (expected [3])");
  expect_error(
      [] {
        cross_entropy(zeros({3, 5}), zeros({3}));
      },
      "nll_loss: target must be i64 class indices, got f32");
  expect_error(
      [] {
        cross_entropy(zeros({3, 5}), zeros({3}, DType::i64), R::mean, -100, 1.5);
      },
      "cross_entropy: label_smoothing must be in [0, 1], got 1.5");
  expect_error(
      [] {
        mse_loss(zeros({3, 5}), zeros({5}));
      },
      "mse_loss: input shape [3, 5] and target shape [5] differ");
  expect_error([] { l1_loss(zeros({2}, DType::i64), zeros({2}, DType::i64)); },
               "l1_loss: input must be floating-point, got i64");
  expect_error(
      [] {
        binary_cross_entropy_with_logits(zeros({4, 3}), zeros({4, 3}), R::mean, ones({4}));
      },
      "binary_cross_entropy_with_logits: shapes [4, 3] and [4] cannot be broadcast");
}
