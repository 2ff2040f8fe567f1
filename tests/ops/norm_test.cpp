// Norm family: values from tests/fixtures/norm.py (PyTorch), f64 gradchecks, non-contiguous
// inputs, the parallel paths, and error cases.
#include <gtest/gtest.h>

#include "expect_error.h"
#include "moxing/ops/norm.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::expect_error;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;

MOXING_OP_CASES(
    "norm",
    std::vector<OpCase>{
        {"layer_norm_btc", [](const V& x) { return layer_norm(x[0], {6}, x[1], x[2]); }},
        {"layer_norm_no_affine", [](const V& x) { return layer_norm(x[0], {5}); }},
        {"layer_norm_weight_only", [](const V& x) { return layer_norm(x[0], {5}, x[1]); }},
        {"layer_norm_bias_only", [](const V& x) { return layer_norm(x[0], {5}, Tensor(), x[1]); }},
        {"layer_norm_2d_shape",
         [](const V& x) {
           return layer_norm(x[0], {3, 4}, x[1], x[2], 1e-3);
         }},
        {"layer_norm_1d", [](const V& x) { return layer_norm(x[0], {7}, x[1], x[2]); }},
        {"layer_norm_eps", [](const V& x) { return layer_norm(x[0], {4}, {}, {}, 0.5); }},
    });

namespace {

// the same layer norm written with reduction and elementwise ops
Tensor layer_norm_composite(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  Tensor m = mean(x, {-1}, true);
  Tensor v = var(x, {-1}, 0, true);
  return add(mul(div(sub(x, m), sqrt(add(v, eps))), w), b);
}

}  // namespace

TEST(LayerNorm, LargeInputMatchesCompositeIncludingGradients) {
  // enough rows and columns that forward, dx and dw/db run on several threads
  Generator gen(11);
  Tensor x = randn({512, 96}, DType::f64, &gen).requires_grad_();
  Tensor w = randn({96}, DType::f64, &gen).requires_grad_();
  Tensor b = randn({96}, DType::f64, &gen).requires_grad_();
  Tensor g = randn({512, 96}, DType::f64, &gen);
  layer_norm(x, {96}, w, b).backward(g);
  Tensor gx = x.grad(), gw = w.grad(), gb = b.grad();
  x.zero_grad();
  w.zero_grad();
  b.zero_grad();
  Tensor ref = layer_norm_composite(x, w, b, 1e-5);
  ref.backward(g);
  NoGradGuard no_grad;
  EXPECT_EQ(moxing::testing::compare(layer_norm(x, {96}, w, b), ref, 1e-12, 1e-10), "");
  EXPECT_EQ(moxing::testing::compare(gx, x.grad(), 1e-10, 1e-9), "");
  EXPECT_EQ(moxing::testing::compare(gw, w.grad(), 1e-10, 1e-9), "");
  EXPECT_EQ(moxing::testing::compare(gb, b.grad(), 1e-10, 1e-9), "");
}

TEST(LayerNorm, F32RowsMatchF64) {
  // the f32 forward runs a vectorized row (16 lanes and a tail): widths with and without a
  // tail, an offset mean that a careless variance loses, with and without weight and bias
  Generator gen(13);
  for (int64_t C : {1, 7, 16, 37, 384, 768}) {
    Tensor x = add(randn({9, C}, DType::f64, &gen), 100.0);
    Tensor w = randn({C}, DType::f64, &gen), b = randn({C}, DType::f64, &gen);
    for (bool affine : {true, false}) {
      Tensor w64 = affine ? w : Tensor(), b64 = affine ? b : Tensor();
      Tensor want = layer_norm(x, {C}, w64, b64);
      Tensor got = layer_norm(x.to(DType::f32), {C}, affine ? w.to(DType::f32) : Tensor(),
                              affine ? b.to(DType::f32) : Tensor());
      EXPECT_EQ(moxing::testing::compare(got.to(DType::f64), want, 2e-4, 1e-4), "") << "C " << C;
    }
  }
}

TEST(LayerNorm, SameResultForAnyThreadCount) {
  Generator gen(12);
  Tensor x = randn({300, 64}, DType::f32, &gen).requires_grad_();
  Tensor w = randn({64}, DType::f32, &gen).requires_grad_();
  Tensor g = randn({300, 64}, DType::f32, &gen);
  int before = num_threads();
  std::vector<std::vector<float>> runs;
  for (int t : {1, 2, 3}) {
    set_num_threads(t);
    x.zero_grad();
    w.zero_grad();
    layer_norm(x, {64}, w).backward(g);
    std::vector<float> r = x.grad().to_vector<float>();
    std::vector<float> rw = w.grad().to_vector<float>();
    r.insert(r.end(), rw.begin(), rw.end());
    runs.push_back(r);
  }
  set_num_threads(before);
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

TEST(LayerNorm, Errors) {
  expect_error(
      [] {
        layer_norm(zeros({2, 3, 5}), {4});
      },
      "layer_norm: normalized_shape [4] does not match the last dims of input [2, 3, 5]");
  expect_error(
      [] {
        layer_norm(zeros({5}), {2, 5});
      },
      "layer_norm: normalized_shape [2, 5] does not match the last dims of input [5]");
  expect_error(
      [] {
        layer_norm(zeros({2, 5}), {5}, ones({4}));
      },
      "layer_norm: weight of shape [4] does not match normalized_shape [5]");
  expect_error(
      [] {
        layer_norm(zeros({2, 5}), {5}, ones({5}), ones({5}, DType::f64));
      },
      "layer_norm: bias dtype f64 differs from input dtype f32");
}
