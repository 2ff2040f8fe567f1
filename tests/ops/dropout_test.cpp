// Dropout: no PyTorch fixture is possible (the mask comes from moxing's own Philox stream, not
// torch's), so these tests check the distribution, the scaling, determinism for a seed, the
// gradient (mask * scale), an f64 gradcheck with a fixed-seed mask, and errors.
#include <gtest/gtest.h>

#include "moxing/ops/dropout.h"
#include "op_harness.h"

using namespace moxing;

TEST(Dropout, DropsAboutPAndScalesTheRest) {
  const double p = 0.3;
  const int64_t n = 200000;
  Generator gen(1);
  std::vector<float> y = dropout(ones({n}), p, true, &gen).to_vector<float>();
  int64_t dropped = 0;
  for (float v : y) {
    if (v == 0.0f) {
      ++dropped;
    } else {
      ASSERT_FLOAT_EQ(v, static_cast<float>(1.0 / (1.0 - p)));
    }
  }
  // the dropped fraction has standard deviation sqrt(p (1 - p) / n) ~ 0.001
  EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(n), p, 0.006);
}

TEST(Dropout, SameSeedSameMask) {
  Tensor x = randn({64, 33});
  Generator g1(42), g2(42), g3(43);
  auto a = dropout(x, 0.5, true, &g1).to_vector<float>();
  auto b = dropout(x, 0.5, true, &g2).to_vector<float>();
  auto c = dropout(x, 0.5, true, &g3).to_vector<float>();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // the stream moves on: a second call with the same generator draws a new mask
  EXPECT_NE(dropout(x, 0.5, true, &g1).to_vector<float>(), a);
}

TEST(Dropout, NonContiguousInputGetsTheSameMask) {
  Tensor x = randn({6, 7}, DType::f64);
  Generator g1(5), g2(5);
  Tensor a = dropout(x, 0.4, true, &g1);
  Tensor b = dropout(moxing::testing::noncontiguous_copy(x), 0.4, true, &g2);
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
}

TEST(Dropout, IdentityWhenNotTrainingOrPZero) {
  Tensor x = randn({4, 5});
  EXPECT_TRUE(dropout(x, 0.5, false).shares_storage(x));
  EXPECT_EQ(dropout(x, 0.5, false).to_vector<float>(), x.to_vector<float>());
  EXPECT_EQ(dropout(x, 0.0, true).to_vector<float>(), x.to_vector<float>());
}

TEST(Dropout, POneGivesZerosAndZeroGradient) {
  Tensor x = randn({3, 4}).requires_grad_();
  Tensor y = dropout(x, 1.0, true);
  for (float v : y.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  sum(y).backward();
  for (float v : x.grad().to_vector<float>()) EXPECT_EQ(v, 0.0f);
}

TEST(Dropout, GradientIsMaskTimesScale) {
  const double p = 0.25;
  Tensor x = randn({10, 10}, DType::f64).requires_grad_();
  Generator g1(7), g2(7);
  Tensor y = dropout(x, p, true, &g1);
  sum(y).backward();
  // the same draw on ones gives mask * scale directly
  Tensor expected = dropout(ones({10, 10}, DType::f64), p, true, &g2);
  EXPECT_EQ(x.grad().to_vector<double>(), expected.to_vector<double>());
}

TEST(Dropout, GradcheckWithFixedMask) {
  // a fresh generator with the same seed on every call keeps the mask fixed across the
  // finite-difference evaluations
  auto f = [](const std::vector<Tensor>& in) {
    Generator gen(1234);
    return dropout(in[0], 0.4, true, &gen);
  };
  Tensor x = randn({5, 6}, DType::f64).requires_grad_();
  auto r = autograd::gradcheck(f, {x});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Dropout, Errors) {
  for (double p : {-0.1, 1.5}) {
    try {
      dropout(ones({2}), p, true);
      FAIL() << "expected an error for p = " << p;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("dropout: probability p must be in [0, 1]"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(dropout(ones({2}, DType::i64), 0.5, true), Error);
}
