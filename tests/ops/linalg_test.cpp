// Linalg family: values from tests/fixtures/linalg.py (PyTorch), f64 gradchecks,
// non-contiguous inputs, error messages, and larger products against a plain loop.
#include "moxing/ops/linalg.h"

#include <gtest/gtest.h>

#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;

MOXING_OP_CASES("linalg",
                std::vector<OpCase>{
                    {"matmul_2d", [](const V& x) { return matmul(x[0], x[1]); }},
                    {"matmul_1d_2d", [](const V& x) { return matmul(x[0], x[1]); }},
                    {"matmul_2d_1d", [](const V& x) { return matmul(x[0], x[1]); }},
                    {"matmul_1d_1d", [](const V& x) { return matmul(x[0], x[1]).reshape({1}); }},
                    {"matmul_1d_3d", [](const V& x) { return matmul(x[0], x[1]); }},
                    {"matmul_3d_1d", [](const V& x) { return matmul(x[0], x[1]); }},
                    {"matmul_batched", [](const V& x) { return matmul(x[0], x[1]); }},
                    {"matmul_3d_2d", [](const V& x) { return matmul(x[0], x[1]); }},
                    {"matmul_2d_3d", [](const V& x) { return matmul(x[0], x[1]); }},
                    {"matmul_broadcast", [](const V& x) { return matmul(x[0], x[1]); }},
                    {"matmul_transposed", [](const V& x) { return matmul(x[0].t(), x[1].t()); }},
                    {"matmul_batched_transposed",
                     [](const V& x) { return matmul(x[0], x[1].transpose(-2, -1)); }},
                    {"bmm", [](const V& x) { return bmm(x[0], x[1]); }},
                    {"linear", [](const V& x) { return linear(x[0], x[1], x[2]); }},
                    {"linear_nobias", [](const V& x) { return linear(x[0], x[1]); }},
                    {"linear_3d", [](const V& x) { return linear(x[0], x[1], x[2]); }},
                    {"linear_1d", [](const V& x) { return linear(x[0], x[1], x[2]); }},
                });

namespace {

// c[b] = a[b] @ bm[b] in double, as a plain loop
std::vector<double> reference_bmm(const Tensor& a, const Tensor& bm) {
  int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = bm.size(2);
  std::vector<double> va = a.to_vector<double>(), vb = bm.to_vector<double>();
  std::vector<double> c(static_cast<size_t>(B * M * N), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += va[static_cast<size_t>((b * M + i) * K + k)] *
               vb[static_cast<size_t>((b * K + k) * N + j)];
        c[static_cast<size_t>((b * M + i) * N + j)] = s;
      }
  return c;
}

void expect_close(const Tensor& t, const std::vector<double>& ref, double tol) {
  std::vector<double> v = t.to_vector<double>();
  ASSERT_EQ(v.size(), ref.size());
  for (size_t i = 0; i < v.size(); ++i) ASSERT_NEAR(v[i], ref[i], tol) << "element " << i;
}

}  // namespace

TEST(Linalg, ShapeErrorsNameOpAndShapes) {
  EXPECT_EQ(error_of([] {
              matmul(zeros({4, 3}), zeros({4, 5}));
            }),
            "matmul: shapes [4, 3] and [4, 5] cannot be multiplied");
  EXPECT_EQ(error_of([] { matmul(zeros({3}), zeros({4})); }),
            "matmul: shapes [3] and [4] cannot be multiplied");
  EXPECT_NE(error_of([] {
              matmul(zeros({2, 3, 4}), zeros({5, 4, 2}));
            }).find("matmul: shapes [2, 3, 4] and [5, 4, 2] cannot be multiplied"),
            std::string::npos);
  EXPECT_NE(error_of([] { matmul(zeros({}), zeros({3})); }).find("matmul: both arguments"),
            std::string::npos);
  EXPECT_EQ(error_of([] {
              bmm(zeros({2, 3, 4}), zeros({3, 4, 5}));
            }),
            "bmm: shapes [2, 3, 4] and [3, 4, 5] cannot be multiplied");
  EXPECT_NE(error_of([] {
              bmm(zeros({3, 4}), zeros({4, 5}));
            }).find("bmm: expected 3-D"),
            std::string::npos);
  EXPECT_EQ(error_of([] {
              linear(zeros({2, 3}), zeros({5, 4}));
            }),
            "linear: input shape [2, 3] does not match weight shape [5, 4] (C_in 3 vs 4)");
  EXPECT_NE(error_of([] {
              linear(zeros({2, 4}), zeros({5, 4}), zeros({4}));
            }).find("linear: bias shape [4]"),
            std::string::npos);
}

TEST(Linalg, DtypeErrors) {
  EXPECT_NE(error_of([] {
              matmul(zeros({2, 2}), zeros({2, 2}, DType::f64));
            }).find("matmul"),
            std::string::npos);
  EXPECT_THROW(matmul(zeros({2, 2}, DType::i64), zeros({2, 2}, DType::i64)), Error);
}

TEST(Linalg, LargeBatchesMatchAPlainLoop) {
  // many small matrices (parallel over the batch) and a few large ones (threaded GEMM)
  for (auto [B, M, K, N] : std::vector<std::array<int64_t, 4>>{{64, 7, 9, 5}, {2, 70, 80, 65}}) {
    Tensor a = arange(0, static_cast<double>(B * M * K), 1, DType::f64).reshape({B, M, K});
    a = sin(a);
    Tensor b = cos(arange(0, static_cast<double>(B * K * N), 1, DType::f64)).reshape({B, K, N});
    expect_close(matmul(a, b), reference_bmm(a, b), 1e-10);
    expect_close(matmul(a.to(DType::f32), b.to(DType::f32)), reference_bmm(a, b), 1e-4);
    // transposed operands read in place
    Tensor at = a.transpose(1, 2).contiguous().transpose(1, 2);
    Tensor bt = b.transpose(1, 2).contiguous().transpose(1, 2);
    EXPECT_FALSE(at.is_contiguous());
    expect_close(bmm(at, bt), reference_bmm(a, b), 1e-10);
  }
}

TEST(Linalg, DotProductIsZeroDim) {
  Tensor d = matmul(from_vector<float>({1, 2, 3}), from_vector<float>({4, 5, 6}));
  EXPECT_EQ(d.shape(), Shape({}));
  EXPECT_EQ(d.item<float>(), 32.0f);
}

TEST(Linalg, EmptyInnerDimGivesZeros) {
  Tensor c = matmul(zeros({3, 0}), zeros({0, 2}));
  EXPECT_EQ(c.shape(), Shape({3, 2}));
  EXPECT_EQ(c.to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(matmul(zeros({0, 3}), zeros({3, 2})).shape(), Shape({0, 2}));
  EXPECT_EQ(matmul(zeros({2, 3, 0}), zeros({0, 4})).to_vector<float>(), std::vector<float>(24, 0));
  EXPECT_EQ(matmul(zeros({2, 0, 3}), zeros({2, 3, 4})).shape(), Shape({2, 0, 4}));
}

TEST(Linalg, BroadcastBatchGradientsHaveInputShapes) {
  Tensor a = ones({2, 1, 3, 4}, DType::f64).requires_grad_();
  Tensor b = ones({3, 4, 2}, DType::f64).requires_grad_();
  matmul(a, b).sum().backward();
  EXPECT_EQ(a.grad().shape(), a.shape());
  EXPECT_EQ(b.grad().shape(), b.shape());
  // each a element meets 2 columns in each of 3 heads; each b element 3 rows in 2 batches
  EXPECT_EQ(a.grad().to_vector<double>(), std::vector<double>(24, 6.0));
  EXPECT_EQ(b.grad().to_vector<double>(), std::vector<double>(24, 6.0));
}

TEST(Matmul, SingleRowAndSingleColumnProductsMatchTheNaiveSum) {
  // one-row and one-column results go through GEMV; every transposed layout of the operands
  manual_seed(3);
  auto naive = [](const Tensor& a, const Tensor& b) {
    Tensor a64 = a.to(DType::f64).contiguous(), b64 = b.to(DType::f64).contiguous();
    int64_t M = a.size(0), K = a.size(1), N = b.size(1);
    std::vector<double> out(static_cast<size_t>(M * N), 0.0);
    const double* pa = a64.data<double>();
    const double* pb = b64.data<double>();
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j)
        for (int64_t k = 0; k < K; ++k) out[i * N + j] += pa[i * K + k] * pb[k * N + j];
    return out;
  };
  const int64_t K = 37, N = 23;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (auto [M, NN] : std::vector<std::pair<int64_t, int64_t>>{{1, N}, {N, 1}, {1, 1}}) {
        Tensor a = ta ? randn({K, M}).transpose(0, 1) : randn({M, K});
        Tensor b = tb ? randn({NN, K}).transpose(0, 1) : randn({K, NN});
        std::vector<double> want = naive(a, b);
        std::vector<double> got = matmul(a, b).to(DType::f64).to_vector<double>();
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i) {
          EXPECT_NEAR(got[i], want[i], 1e-4) << "ta " << ta << " tb " << tb << " M " << M;
        }
      }
    }
  }
}
