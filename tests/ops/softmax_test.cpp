// Softmax family: values from tests/fixtures/softmax.py (PyTorch), f64 gradchecks,
// non-contiguous inputs, the strided-dim and parallel paths, and error cases.
#include <gtest/gtest.h>

#include <cmath>

#include "moxing/ops/softmax.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;

MOXING_OP_CASES("softmax",
                std::vector<OpCase>{
                    {"softmax_last", [](const V& x) { return softmax(x[0], -1); }},
                    {"softmax_dim0", [](const V& x) { return softmax(x[0], 0); }},
                    {"softmax_middle", [](const V& x) { return softmax(x[0], 1); }},
                    {"softmax_1d", [](const V& x) { return softmax(x[0], 0); }},
                    {"softmax_large_values", [](const V& x) { return softmax(x[0], -1); }},
                    {"log_softmax_last", [](const V& x) { return log_softmax(x[0], -1); }},
                    {"log_softmax_dim0", [](const V& x) { return log_softmax(x[0], 0); }},
                    {"log_softmax_middle", [](const V& x) { return log_softmax(x[0], -2); }},
                    {"log_softmax_large_values", [](const V& x) { return log_softmax(x[0], 1); }},
                });

TEST(Softmax, RowsSumToOneOnLargeInputs) {
  // large enough to split rows (and columns) across threads
  Generator gen(7);
  Tensor x = randn({300, 257}, DType::f32, &gen);
  for (int64_t dim : {0, 1}) {
    Tensor s = sum(softmax(x, dim), {dim});
    for (float v : s.to_vector<float>()) ASSERT_NEAR(v, 1.0f, 1e-5f);
  }
}

TEST(Softmax, AnyDimMatchesLastDimOfTransposed) {
  Generator gen(3);
  Tensor x = randn({4, 33, 5}, DType::f64, &gen);
  Tensor a = softmax(x, 1);
  Tensor b = softmax(x.transpose(1, 2), 2).transpose(1, 2);
  EXPECT_EQ(moxing::testing::compare(a, b, 1e-15, 1e-12), "");
  Tensor la = log_softmax(x, 1);
  EXPECT_EQ(moxing::testing::compare(la, log(a), 1e-12, 1e-12), "");
}

TEST(Softmax, InfiniteLogitsGetZeroProbability) {
  float inf = INFINITY;
  Tensor x = tensor({1.0f, -inf, 2.0f, -inf}, {1, 4});
  auto p = softmax(x, -1).to_vector<float>();
  EXPECT_EQ(p[1], 0.0f);
  EXPECT_EQ(p[3], 0.0f);
  EXPECT_NEAR(p[0] + p[2], 1.0f, 1e-6f);
  auto lp = log_softmax(x, -1).to_vector<float>();
  EXPECT_EQ(lp[1], -inf);
}

TEST(Softmax, GradientOfSumIsZero) {
  // sum(softmax) is constant, so its gradient vanishes (also exercises a stride-0 gradient)
  Tensor x = randn({3, 6}, DType::f64).requires_grad_();
  sum(softmax(x, 1)).backward();
  for (double v : x.grad().to_vector<double>()) EXPECT_NEAR(v, 0.0, 1e-15);
}

TEST(Softmax, Errors) {
  try {
    softmax(zeros({2, 3}), 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("softmax: dim 2 is out of range"), std::string::npos)
        << e.what();
  }
  try {
    log_softmax(zeros({2, 3}, DType::i64), 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("log_softmax: needs a floating-point tensor, got i64"),
              std::string::npos)
        << e.what();
  }
}
