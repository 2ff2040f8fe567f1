// Reduction family: values from tests/fixtures/reduction.py (PyTorch), f64 gradchecks,
// non-contiguous inputs, and edge and error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;

MOXING_OP_CASES(
    "reduction",
    std::vector<OpCase>{
        // full reductions are reshaped to [1]: the fixture loader has no 0-d tensors
        {"sum_all", [](const V& x) { return sum(x[0]).reshape({1}); }},
        {"sum_dim0", [](const V& x) { return sum(x[0], {0}); }},
        {"sum_dims_keepdim",
         [](const V& x) {
           return sum(x[0], {0, 2}, true);
         }},
        {"sum_neg_dim", [](const V& x) { return sum(x[0], {-1}); }},
        {"sum_middle", [](const V& x) { return sum(x[0], {1}); }},
        {"mean_all", [](const V& x) { return mean(x[0]).reshape({1}); }},
        {"mean_dims",
         [](const V& x) {
           return mean(x[0], {1, 2});
         }},
        {"mean_keepdim", [](const V& x) { return mean(x[0], {0}, true); }},
        {"var_all", [](const V& x) { return var(x[0]).reshape({1}); }},
        {"var_dim", [](const V& x) { return var(x[0], {1}); }},
        {"var_correction0_keepdim", [](const V& x) { return var(x[0], {0}, 0, true); }},
        {"var_correction2",
         [](const V& x) {
           return var(x[0], {0, 2}, 2);
         }},
        {"std_all", [](const V& x) { return moxing::std(x[0]).reshape({1}); }},
        {"std_dim", [](const V& x) { return moxing::std(x[0], {-1}, 1, true); }},
        {"std_correction0", [](const V& x) { return moxing::std(x[0], {0}, 0); }},
        {"amax_all", [](const V& x) { return amax(x[0]).reshape({1}); }},
        {"amax_dim", [](const V& x) { return amax(x[0], {1}); }},
        {"amax_dims_keepdim",
         [](const V& x) {
           return amax(x[0], {0, 2}, true);
         }},
        {"amin_dim", [](const V& x) { return amin(x[0], {0}); }},
        {"amin_neg_dim", [](const V& x) { return amin(x[0], {-1}, true); }},
        {"max_dim_values", [](const V& x) { return max(x[0], 1).values; }},
        {"max_dim_keepdim_values", [](const V& x) { return max(x[0], 0, true).values; }},
        {"min_dim_values", [](const V& x) { return min(x[0], -1).values; }},
        {"logsumexp", [](const V& x) { return logsumexp(x[0], {1}); }},
        {"logsumexp_dims_keepdim",
         [](const V& x) {
           return logsumexp(x[0], {0, 2}, true);
         }},
        {"logsumexp_large", [](const V& x) { return logsumexp(x[0], {0}); }},
        // integer outputs: no gradient
        {"argmax", [](const V& x) { return argmax(x[0], 1); }, 0, 0, false},
        {"argmax_all", [](const V& x) { return argmax(x[0]).reshape({1}); }, 0, 0, false},
        {"argmin", [](const V& x) { return argmin(x[0], 0); }, 0, 0, false},
        {"argmin_keepdim", [](const V& x) { return argmin(x[0], -1, true); }, 0, 0, false},
    });

TEST(Reduction, MaxDimReturnsValuesAndFirstIndex) {
  Tensor x = from_vector<float>({1, 5, 5, 2, 0, -1}, {2, 3});
  auto r = max(x, 1);
  EXPECT_EQ(r.values.to_vector<float>(), std::vector<float>({5, 2}));
  EXPECT_EQ(r.indices.dtype(), DType::i64);
  EXPECT_EQ(r.indices.to_vector<int64_t>(), std::vector<int64_t>({1, 0}));
  auto m = min(x, 0, true);
  EXPECT_EQ(m.values.shape(), Shape({1, 3}));
  EXPECT_EQ(m.indices.to_vector<int64_t>(), std::vector<int64_t>({0, 1, 1}));
}

TEST(Reduction, MaxDimGradientGoesToTheReturnedIndex) {
  // torch.max(x, dim) routes the gradient to the index it returns, even with ties
  Tensor x = from_vector<double>({3, 3, 1}, {1, 3}).requires_grad_();
  max(x, 1).values.sum().backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({1, 0, 0}));
}

TEST(Reduction, AmaxGradientIsSplitAmongTies) {
  // matches torch.amax: the gradient is shared evenly by equal maxima
  Tensor x = from_vector<double>({3, 3, 1}).requires_grad_();
  amax(x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({0.5, 0.5, 0}));
}

TEST(Reduction, NanPropagatesThroughMaxAndMin) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = from_vector<float>({1, nan, 3});
  EXPECT_TRUE(std::isnan(amax(x).item<float>()));
  EXPECT_TRUE(std::isnan(amin(x).item<float>()));
  EXPECT_EQ(argmax(x).item<int64_t>(), 1);
}

TEST(Reduction, IntegerAndBoolSumsAreI64AndExact) {
  Tensor b = from_vector<bool>({true, false, true, true});
  Tensor s = sum(b);
  EXPECT_EQ(s.dtype(), DType::i64);
  EXPECT_EQ(s.item<int64_t>(), 3);
  // 2^53 + 1 is not representable in a double accumulator
  int64_t big = int64_t{1} << 53;
  Tensor i = from_vector<int64_t>({big, 1});
  EXPECT_EQ(sum(i).item<int64_t>(), big + 1);
  Tensor i32 = from_vector<int32_t>({1, 2, 3});
  EXPECT_EQ(sum(i32).dtype(), DType::i64);
  EXPECT_EQ(sum(i32).item<int64_t>(), 6);
}

TEST(Reduction, EmptyAndZeroDim) {
  EXPECT_EQ(sum(zeros({0, 3})).item<float>(), 0.0f);
  EXPECT_EQ(sum(zeros({0, 3}), {0}).to_vector<float>(), std::vector<float>({0, 0, 0}));
  EXPECT_TRUE(std::isnan(mean(zeros({0})).item<float>()));
  Tensor s = scalar_tensor(2.5);
  EXPECT_EQ(sum(s).item<float>(), 2.5f);
  EXPECT_EQ(sum(s, {0}).item<float>(), 2.5f);
  EXPECT_EQ(amax(s).item<float>(), 2.5f);
  // var of a single element with correction 1 is nan, as in torch
  EXPECT_TRUE(std::isnan(var(ones({1})).item<float>()));
}

TEST(Reduction, LargeSumIsAccurateAndThreadIndependent) {
  Tensor x = full({1 << 20}, 0.1f);
  int saved = num_threads();
  set_num_threads(1);
  float one = sum(x).item<float>();
  Tensor cols1 = sum(x.view({1024, 1024}), {0});
  set_num_threads(2);
  float two = sum(x).item<float>();
  Tensor cols2 = sum(x.view({1024, 1024}), {0});
  set_num_threads(saved);
  EXPECT_EQ(one, two);
  EXPECT_EQ(cols1.to_vector<float>(), cols2.to_vector<float>());
  EXPECT_NEAR(one, 104857.6, 0.05);
}

TEST(Reduction, LogsumexpOfMinusInfinityRow) {
  float inf = std::numeric_limits<float>::infinity();
  Tensor x = from_vector<float>({-inf, -inf, 0, 0}, {2, 2});
  auto v = logsumexp(x, {1}).to_vector<float>();
  EXPECT_EQ(v[0], -inf);
  EXPECT_NEAR(v[1], std::log(2.0f), 1e-6);
}

TEST(Reduction, ErrorsNameTheOp) {
  EXPECT_NE(error_of([] {
              (void)sum(zeros({2, 3}), {2});
            }).find("sum: dim 2 is out of range"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              (void)sum(zeros({2, 3}), {1, -1});
            }).find("sum: dim -1 repeated"),
            std::string::npos);
  EXPECT_NE(error_of([] { (void)mean(zeros({2}, DType::i64)); }).find("mean"), std::string::npos);
  EXPECT_NE(error_of([] { (void)amax(zeros({0})); }).find("amax: cannot reduce an empty tensor"),
            std::string::npos);
  EXPECT_NE(error_of([] { (void)max(zeros({2, 3}), 2); }).find("max"), std::string::npos);
}

TEST(Reduction, SumToInvertsBroadcast) {
  Tensor g = ones({2, 3, 4});
  Tensor s = sum_to(g, {3, 1});
  EXPECT_EQ(s.shape(), Shape({3, 1}));
  EXPECT_EQ(s.to_vector<float>(), std::vector<float>({8, 8, 8}));
  EXPECT_NE(error_of([&] { (void)sum_to(ones({3}), {2, 3}); }).find("sum_to"), std::string::npos);
}

TEST(Reduction, LargeStridedReductionsMatchANaiveLoop) {
  // (300, 500) transposed to (500, 300): both dims, through the parallel paths
  Generator g(9);
  Tensor base = rand({300, 500}, DType::f64, &g);
  Tensor x = base.t();
  std::vector<double> v = base.to_vector<double>();
  auto at = [&](int64_t i, int64_t j) { return v[static_cast<size_t>(j * 500 + i)]; };  // x[i, j]
  std::vector<double> s0(300, 0.0), s1(500, 0.0), m1(500, -1.0);
  std::vector<int64_t> a1(500, 0);
  for (int64_t i = 0; i < 500; ++i) {
    for (int64_t j = 0; j < 300; ++j) {
      s0[static_cast<size_t>(j)] += at(i, j);
      s1[static_cast<size_t>(i)] += at(i, j);
      if (at(i, j) > m1[static_cast<size_t>(i)]) {
        m1[static_cast<size_t>(i)] = at(i, j);
        a1[static_cast<size_t>(i)] = j;
      }
    }
  }
  std::vector<double> r0 = sum(x, {0}).to_vector<double>(), r1 = sum(x, {1}).to_vector<double>();
  for (size_t j = 0; j < 300; ++j) EXPECT_NEAR(r0[j], s0[j], 1e-9) << j;
  for (size_t i = 0; i < 500; ++i) EXPECT_NEAR(r1[i], s1[i], 1e-9) << i;
  EXPECT_EQ(amax(x, {1}).to_vector<double>(), m1);
  EXPECT_EQ(argmax(x, 1).to_vector<int64_t>(), a1);
}
