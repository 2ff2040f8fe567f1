// Elementwise family: values from tests/fixtures/elementwise.py (PyTorch), f64 gradchecks,
// non-contiguous inputs, and error cases.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cpu/vec_math.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;

MOXING_OP_CASES("elementwise",
                std::vector<OpCase>{
                    {"add", [](const V& x) { return x[0] + x[1]; }},
                    {"add_broadcast", [](const V& x) { return add(x[0], x[1]); }},
                    {"add_alpha", [](const V& x) { return add(x[0], x[1], 2.5); }},
                    {"sub", [](const V& x) { return x[0] - x[1]; }},
                    {"mul", [](const V& x) { return x[0] * x[1]; }},
                    {"div", [](const V& x) { return x[0] / x[1]; }},
                    {"pow_tensor", [](const V& x) { return pow(x[0], x[1]); }},
                    {"pow_scalar", [](const V& x) { return pow(x[0], 3.0); }},
                    {"maximum", [](const V& x) { return maximum(x[0], x[1]); }},
                    {"minimum", [](const V& x) { return minimum(x[0], x[1]); }},
                    {"neg", [](const V& x) { return -x[0]; }},
                    {"abs", [](const V& x) { return abs(x[0]); }},
                    {"clamp", [](const V& x) { return clamp(x[0], -0.5, 0.7); }},
                    {"exp", [](const V& x) { return exp(x[0]); }},
                    {"log", [](const V& x) { return log(x[0]); }},
                    {"log1p", [](const V& x) { return log1p(x[0]); }},
                    {"sqrt", [](const V& x) { return sqrt(x[0]); }},
                    {"rsqrt", [](const V& x) { return rsqrt(x[0]); }},
                    {"sin", [](const V& x) { return sin(x[0]); }},
                    {"cos", [](const V& x) { return cos(x[0]); }},
                    {"tanh", [](const V& x) { return tanh(x[0]); }},
                    {"sigmoid", [](const V& x) { return sigmoid(x[0]); }},
                    {"relu", [](const V& x) { return relu(x[0]); }},
                    {"leaky_relu", [](const V& x) { return leaky_relu(x[0], 0.2); }},
                    {"gelu", [](const V& x) { return gelu(x[0]); }},
                    {"gelu_tanh", [](const V& x) { return gelu(x[0], "tanh"); }},
                    {"silu", [](const V& x) { return silu(x[0]); }},
                    {"softplus", [](const V& x) { return softplus(x[0], 2.0, 3.0); }},
                    {"where", [](const V& x) { return where(x[0], x[1], x[2]); }},
                    {"masked_fill", [](const V& x) { return masked_fill(x[0], x[1], -2.0); }},
                    {"eq", [](const V& x) { return eq(x[0], x[1]); }, 0, 0, false},
                    {"lt", [](const V& x) { return lt(x[0], x[1]); }, 0, 0, false},
                    {"ge", [](const V& x) { return ge(x[0], x[1]); }, 0, 0, false},
                    {"ne", [](const V& x) { return ne(x[0], x[1]); }, 0, 0, false},
                    {"le", [](const V& x) { return le(x[0], x[1]); }, 0, 0, false},
                    {"gt", [](const V& x) { return gt(x[0], x[1]); }, 0, 0, false},
                    {"logical_not", [](const V& x) { return logical_not(x[0]); }, 0, 0, false},
                });

TEST(Elementwise, BroadcastErrorNamesOpAndShapes) {
  try {
    add(zeros({2, 3}), zeros({4}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add: shapes [2, 3] and [4]"), std::string::npos)
        << e.what();
  }
}

TEST(Elementwise, DtypeMismatchIsAnError) {
  EXPECT_THROW(mul(zeros({2}), zeros({2}, DType::f64)), Error);
}

TEST(Elementwise, ScalarOverloadsKeepDtype) {
  Tensor x = ones({3}, DType::f64);
  Tensor y = 2.0 * x + 1.0;
  EXPECT_EQ(y.dtype(), DType::f64);
  EXPECT_EQ(y.to_vector<double>(), std::vector<double>({3, 3, 3}));
}

TEST(Elementwise, IntegerArithmetic) {
  Tensor a = from_vector<int64_t>({1, 2, 3});
  Tensor b = from_vector<int64_t>({10, 20, 30});
  EXPECT_EQ((a + b).to_vector<int64_t>(), std::vector<int64_t>({11, 22, 33}));
  EXPECT_EQ(gt(b, a).to_vector<bool>(), std::vector<bool>({true, true, true}));
}

TEST(Elementwise, LargeTensorsUseTheParallelPathCorrectly) {
  int saved = num_threads();
  set_num_threads(2);
  Tensor a = arange(0, 200000, 1, DType::f32);
  Tensor b = ones({200000});
  Tensor c = a + b;
  auto v = c.to_vector<float>();
  EXPECT_EQ(v.front(), 1.0f);
  EXPECT_EQ(v.back(), 200000.0f);
  // transposed (non-contiguous) large operand
  Tensor m = arange(0, 300 * 400, 1, DType::f32).reshape({300, 400});
  Tensor mt = m.t();
  Tensor s = mt + zeros({400, 300});
  EXPECT_EQ(s.to_vector<float>()[1], 400.0f);
  EXPECT_EQ(s.to_vector<float>()[400 * 300 - 1], 300.0f * 400.0f - 1.0f);
  set_num_threads(saved);
}

TEST(Elementwise, ReluPassesNaNThrough) {
  Tensor y = relu(from_vector<float>({NAN, -1.0f, 2.0f}));
  auto v = y.to_vector<float>();
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], 0.0f);
  EXPECT_EQ(v[2], 2.0f);
}

TEST(Elementwise, GeluTanhF32MatchesF64AcrossTheRange) {
  // the f32 tanh form runs a vectorized tanh; compare it with the f64 scalar formula
  std::vector<double> xs;
  for (int i = -20000; i <= 20000; ++i) xs.push_back(i * 5e-4);
  for (double v : {1e-6, -1e-6, 3e-3, -3e-3, 0.0, 40.0, -40.0}) xs.push_back(v);
  Tensor x64 = from_vector(xs, {static_cast<int64_t>(xs.size())});
  Tensor x32 = x64.to(DType::f32).requires_grad_();
  Tensor y32 = gelu(x32, "tanh");
  sum(y32).backward();
  Tensor x = x64.clone().requires_grad_();
  Tensor y = gelu(x, "tanh");
  sum(y).backward();
  std::vector<double> want = y.to_vector<double>(), got = y32.to(DType::f64).to_vector<double>();
  std::vector<double> gwant = x.grad().to_vector<double>();
  std::vector<double> ggot = x32.grad().to(DType::f64).to_vector<double>();
  double err = 0, gerr = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    err = std::max(err, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
    gerr = std::max(gerr, std::abs(ggot[i] - gwant[i]));
  }
  EXPECT_LT(err, 2e-6);
  EXPECT_LT(gerr, 2e-6);
}

TEST(Elementwise, GeluErfF32MatchesF64AcrossTheRange) {
  // the f32 erf form runs the vectorized erf_f32; compare it with the f64 formula (std::erf)
  std::vector<double> xs;
  for (int i = -20000; i <= 20000; ++i) xs.push_back(i * 5e-4);
  for (double v : {1e-6, -1e-6, 3e-3, -3e-3, 0.0, 40.0, -40.0}) xs.push_back(v);
  Tensor x64 = from_vector(xs, {static_cast<int64_t>(xs.size())});
  Tensor x32 = x64.to(DType::f32).requires_grad_();
  Tensor y32 = gelu(x32);
  sum(y32).backward();
  Tensor x = x64.clone().requires_grad_();
  Tensor y = gelu(x);
  sum(y).backward();
  std::vector<double> want = y.to_vector<double>(), got = y32.to(DType::f64).to_vector<double>();
  std::vector<double> gwant = x.grad().to_vector<double>();
  std::vector<double> ggot = x32.grad().to(DType::f64).to_vector<double>();
  double err = 0, gerr = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    err = std::max(err, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
    gerr = std::max(gerr, std::abs(ggot[i] - gwant[i]));
  }
  EXPECT_LT(err, 2e-6);
  EXPECT_LT(gerr, 2e-6);
}

TEST(Elementwise, ErfF32MatchesStdErf) {
  // the scalar body of the vectorized kernels, against std::erf in double, over [-10, 10]
  double worst = 0;
  for (int i = -200000; i <= 200000; ++i) {
    const float x = static_cast<float>(i * 5e-5);
    worst = std::max(worst, std::abs(static_cast<double>(kernels::cpu::erf_f32(x)) -
                                     std::erf(static_cast<double>(x))));
  }
  EXPECT_LT(worst, 5e-7);
  EXPECT_EQ(kernels::cpu::erf_f32(0.0f), 0.0f);
  EXPECT_EQ(kernels::cpu::erf_f32(INFINITY), 1.0f);
  EXPECT_EQ(kernels::cpu::erf_f32(-INFINITY), -1.0f);
  EXPECT_TRUE(std::isnan(kernels::cpu::erf_f32(NAN)));
}
