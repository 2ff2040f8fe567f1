// Indexing family: values from tests/fixtures/indexing.py (PyTorch), f64 gradchecks,
// non-contiguous inputs, and error cases (shapes, dtypes, out-of-range indices).
#include <gtest/gtest.h>

#include "expect_error.h"
#include "moxing/ops/indexing.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::expect_error;
using moxing::testing::needs_values;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;

MOXING_OP_CASES(
    "indexing",
    std::vector<OpCase>{
        {"cat_dim0",
         [](const V& x) {
           return cat({x[0], x[1], x[2]}, 0);
         }},
        {"cat_dim1",
         [](const V& x) {
           return cat({x[0], x[1], x[2]}, 1);
         }},
        {"cat_dim_neg1",
         [](const V& x) {
           return cat({x[0], x[1], x[2]}, -1);
         }},
        {"stack_dim0",
         [](const V& x) {
           return stack({x[0], x[1], x[2]}, 0);
         }},
        {"stack_dim1",
         [](const V& x) {
           return stack({x[0], x[1]}, 1);
         }},
        {"index_select_dim0", [](const V& x) { return index_select(x[0], 0, x[1]); }},
        {"index_select_dim1", [](const V& x) { return index_select(x[0], 1, x[1]); }},
        {"index_select_dim_neg1", [](const V& x) { return index_select(x[0], -1, x[1]); }},
        {"gather_dim1", [](const V& x) { return gather(x[0], 1, x[1]); }},
        {"gather_dim0", [](const V& x) { return gather(x[0], 0, x[1]); }},
        {"gather_3d_dim_neg2", [](const V& x) { return gather(x[0], -2, x[1]); }},
        {"scatter_add_dim0", [](const V& x) { return scatter_add(x[0], 0, x[1], x[2]); }},
        {"scatter_add_dim1", [](const V& x) { return scatter_add(x[0], 1, x[1], x[2]); }},
        {"index_add_dim0", [](const V& x) { return index_add(x[0], 0, x[1], x[2]); }},
        {"index_add_dim1", [](const V& x) { return index_add(x[0], 1, x[1], x[2]); }},
        needs_values({"one_hot", [](const V& x) { return one_hot(x[0]); }, 0, 0, false}),
        needs_values({"one_hot_classes", [](const V& x) { return one_hot(x[0], 6); }, 0, 0, false}),
        {"tril_diag0", [](const V& x) { return tril(x[0], 0); }},
        {"tril_diag1", [](const V& x) { return tril(x[0], 1); }},
        {"tril_diagneg1", [](const V& x) { return tril(x[0], -1); }},
        {"triu_diag0", [](const V& x) { return triu(x[0], 0); }},
        {"triu_diag1", [](const V& x) { return triu(x[0], 1); }},
        {"triu_diagneg1", [](const V& x) { return triu(x[0], -1); }},
    });

namespace {

Tensor idx(std::vector<int64_t> v, Shape shape = {}) { return from_vector(v, shape); }

}  // namespace

TEST(Indexing, CatShapeMismatchNamesShapes) {
  expect_error(
      [&] {
        (void)cat({zeros({2, 3}), zeros({2, 4})}, 0);
      },
      "cat: shapes [2, 3] (entry 0) and [2, 4] (entry 1) must match except in dim 0");
  expect_error([&] { (void)cat({zeros({2, 3}), zeros({2, 3, 1})}, 0); }, "cat: shapes [2, 3]");
  expect_error([&] { (void)cat({}, 0); }, "cat: expects a non-empty list");
  expect_error([&] { (void)cat({zeros({2, 3})}, 2); }, "cat: dim 2 is out of range");
}

TEST(Indexing, CatAndStackDtypeMismatch) {
  expect_error(
      [&] {
        (void)cat({zeros({2}), zeros({2}, DType::f64)});
      },
      "cat: entry 1 has dtype f64");
  expect_error(
      [&] {
        (void)stack({zeros({2}), zeros({2}, DType::f64)});
      },
      "stack: entry 1 has dtype f64");
  expect_error(
      [&] {
        (void)stack({zeros({2}), zeros({3})});
      },
      "stack: expects tensors of one shape, got [2] (entry 0) and [3] (entry 1)");
}

TEST(Indexing, OutOfRangeIndexNamesOpValueAndSize) {
  Tensor x = zeros({4, 3});
  expect_error(
      [&] {
        (void)index_select(x, 0, idx({0, 4}));
      },
      "index_select: index 4 is out of range for dim 0 of size 4");
  expect_error([&] { (void)index_select(x, 1, idx({-1})); },
               "index_select: index -1 is out of range for dim 1 of size 3");
  expect_error(
      [&] {
        (void)gather(x, 1, idx({0, 1, 3, 2}, {2, 2}));
      },
      "gather: index 3 is out of range for dim 1 of size 3");
  expect_error(
      [&] {
        (void)scatter_add(x, 0, idx({0, 7}, {1, 2}), ones({1, 2}));
      },
      "scatter_add: index 7 is out of range for dim 0 of size 4");
  expect_error(
      [&] {
        (void)index_add(x, 0, idx({5}), ones({1, 3}));
      },
      "index_add: index 5 is out of range for dim 0 of size 4");
  expect_error(
      [&] {
        (void)one_hot(idx({0, 3}), 3);
      },
      "one_hot: class index 3 is out of range for 3 classes");
  expect_error([&] { (void)one_hot(idx({0, -2})); }, "one_hot: class index -2 is out of range");
}

TEST(Indexing, WrongIndexDtype) {
  Tensor x = zeros({4, 3});
  Tensor fi = zeros({2});
  expect_error([&] { (void)index_select(x, 0, fi); },
               "index_select: index must be i64 or i32, got f32");
  expect_error(
      [&] {
        (void)gather(x, 0, zeros({2, 3}));
      },
      "gather: index must be i64 or i32, got f32");
  expect_error(
      [&] {
        (void)scatter_add(x, 0, zeros({1, 3}), ones({1, 3}));
      },
      "scatter_add: index must be i64 or i32, got f32");
  expect_error(
      [&] {
        (void)index_add(x, 0, fi, ones({2, 3}));
      },
      "index_add: index must be i64 or i32");
  expect_error([&] { (void)one_hot(fi); }, "one_hot: index must be i64 or i32, got f32");
}

TEST(Indexing, ShapeErrors) {
  Tensor x = zeros({4, 3});
  expect_error(
      [&] {
        (void)index_select(x, 0, idx({0, 1}, {1, 2}));
      },
      "index_select: index must be 1-D");
  expect_error(
      [&] {
        (void)gather(x, 0, idx({0, 1}));
      },
      "gather: index of shape [2] must have as many dims as the input of shape [4, 3]");
  expect_error(
      [&] {
        (void)gather(x, 0, idx({0, 0, 0, 0}, {1, 4}));
      },
      "gather: index of shape [1, 4] is larger than the input of shape [4, 3] in dim 1");
  expect_error(
      [&] {
        (void)scatter_add(x, 0, idx({0, 0}, {1, 2}), ones({1, 1}));
      },
      "scatter_add: index of shape [1, 2] is larger than src [1, 1]");
  expect_error(
      [&] {
        (void)scatter_add(x, 0, idx({0}, {1, 1}), ones({1, 1}, DType::f64));
      },
      "scatter_add: self dtype f32 and src dtype f64 differ");
  expect_error(
      [&] {
        (void)index_add(x, 0, idx({0, 1}), ones({3, 3}));
      },
      "index_add: src of shape [3, 3] does not fit self of shape [4, 3]");
  expect_error([&] { (void)tril(zeros({3})); },
               "tril: needs a tensor with at least 2 dims, got shape [3]");
  expect_error([&] { (void)triu(zeros({})); }, "triu: needs a tensor with at least 2 dims");
  expect_error([&] { (void)one_hot(from_vector<int64_t>({}, {0})); },
               "one_hot: cannot infer num_classes");
}

TEST(Indexing, ScatterAddGradientWithSrcLargerThanIndex) {
  // torch's autograd refuses this case; src elements past index's extent get a zero gradient
  Tensor self = randn({3, 4}, DType::f64).requires_grad_();
  Tensor src = randn({2, 5}, DType::f64).requires_grad_();
  Tensor index = idx({0, 2, 2, 1, 1, 0}, {2, 3});
  auto r = autograd::gradcheck([&](const V& x) { return scatter_add(x[0], 1, index, x[1]); },
                               {self, src});
  EXPECT_TRUE(r.ok) << r.message;
  src.zero_grad();
  Tensor out = scatter_add(self, 1, index, src);
  out.backward(ones({3, 4}, DType::f64));
  auto g = src.grad().to_vector<double>();
  EXPECT_EQ(g, std::vector<double>({1, 1, 1, 0, 0, 1, 1, 1, 0, 0}));
}

TEST(Indexing, ScatterIsDeterministicAcrossThreadCounts) {
  // many repeated indices into few rows: f32 sums must not depend on the thread split
  int64_t n = 100000;
  Generator gen(7);
  Tensor src = randn({n, 3}, DType::f32, &gen);
  Tensor rows = randint(0, 4, {n}, DType::i64, &gen);
  Tensor rows2d = randint(0, 4, {n, 3}, DType::i64, &gen);
  Tensor big_src = randn({500, 40, 8}, DType::f32, &gen);
  Tensor cols = randint(0, 6, {40}, DType::i64, &gen);
  auto run = [&] {
    return std::vector<Tensor>{index_add(zeros({4, 3}), 0, rows, src),
                               scatter_add(zeros({4, 3}), 0, rows2d, src),
                               index_add(zeros({500, 6, 8}), 1, cols, big_src)};
  };
  int saved = num_threads();
  set_num_threads(1);
  auto one = run();
  set_num_threads(4);
  auto four = run();
  set_num_threads(saved);
  for (size_t k = 0; k < one.size(); ++k) {
    EXPECT_EQ(one[k].to_vector<float>(), four[k].to_vector<float>()) << "result " << k;
  }
}

TEST(Indexing, IntegerAndSmallCases) {
  Tensor x = from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(index_select(x, 1, from_vector<int32_t>({2, 0})).to_vector<int64_t>(),
            std::vector<int64_t>({3, 1, 6, 4}));
  EXPECT_EQ(tril(x).to_vector<int64_t>(), std::vector<int64_t>({1, 0, 0, 4, 5, 0}));
  EXPECT_EQ(triu(x, 1).to_vector<int64_t>(), std::vector<int64_t>({0, 2, 3, 0, 0, 6}));
  EXPECT_EQ(cat({x, x}, -1).shape(), Shape({2, 6}));
  EXPECT_EQ(stack({x, x}, -1).shape(), Shape({2, 3, 2}));
  EXPECT_EQ(one_hot(from_vector<int64_t>({}, {0}), 3).shape(), Shape({0, 3}));
  EXPECT_EQ(index_select(zeros({3, 2}), 0, from_vector<int64_t>({}, {0})).shape(), Shape({0, 2}));
}

TEST(Indexing, ModifiedIndexIsCaughtInBackward) {
  Tensor x = randn({4, 3}).requires_grad_();
  Tensor index = idx({1, 2});
  Tensor y = index_select(x, 0, index);
  index.fill_(0);
  expect_error(
      [&] {
        (void)y.backward(ones({2, 3}));
      },
      "index_select: a tensor of shape [2] saved");
}
