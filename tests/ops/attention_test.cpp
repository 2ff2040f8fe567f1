// Attention family: values from tests/fixtures/attention.py (PyTorch), f64 gradchecks,
// non-contiguous inputs, the fused kernel against the composite (values, gradients, strided
// heads, thread counts), attention dropout against the written-out composite, and errors.
#include <gtest/gtest.h>

#include <cmath>

#include "expect_error.h"
#include "moxing/core/parallel.h"
#include "moxing/ops/attention.h"
#include "moxing/ops/dropout.h"
#include "moxing/ops/linalg.h"
#include "moxing/ops/softmax.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::expect_error;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;

MOXING_OP_CASES(
    "attention",
    std::vector<OpCase>{
        {"sdpa_basic", [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }},
        {"sdpa_causal",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.0, true); }},
        {"sdpa_causal_rect",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.0, true); }},
        {"sdpa_padding_mask",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], x[3]); }},
        {"sdpa_bool_mask_ts",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], x[3]); }},
        {"sdpa_float_mask",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], x[3]); }},
        {"sdpa_scale",
         [](const V& x) {
           return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.0, false, 0.3);
         }},
        {"sdpa_3d",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.0, true); }},
        {"sdpa_fused_causal",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.0, true); }},
        {"sdpa_fused_plain",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }},
        {"sdpa_fused_causal_blocks",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.0, true); }},
        {"sdpa_fused_causal_t_gt_s",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.0, true); }},
        {"sdpa_fused_causal_t_lt_s",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.0, true); }},
        {"sdpa_fused_decode",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }},
        {"sdpa_fused_decode_causal",
         [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.0, true); }},
    });

namespace {

// Output and q, k, v gradients of one attention call, for a fixed upstream gradient.
struct Result {
  Tensor y, dq, dk, dv;
};

Result run_attention(bool fused, const Tensor& q0, const Tensor& k0, const Tensor& v0, bool causal,
                     const Tensor& gy, const Tensor& mask = Tensor()) {
  Tensor q = q0.detach().requires_grad_(), k = k0.detach().requires_grad_();
  Tensor v = v0.detach().requires_grad_();  // leaves keep the callers' strides
  Tensor y = fused ? scaled_dot_product_attention(q, k, v, mask, 0.0, causal)
                   : scaled_dot_product_attention_math(q, k, v, mask, 0.0, causal);
  y.backward(gy);
  return {y.detach(), q.grad(), k.grad(), v.grad()};
}

// (B,NH,R,C) values stored as (B,R,NH,C), as q, k, v split from one projection are
Tensor heads_transposed(const Tensor& t) { return t.transpose(1, 2).contiguous().transpose(1, 2); }

void expect_fused_matches_math(const Shape& qs, int64_t S, int64_t HSv, bool causal,
                               bool transposed, uint64_t seed, const Tensor& mask = Tensor()) {
  Generator gen(seed);
  Shape ks = qs, vs = qs;
  ks[2] = S;
  vs[2] = S;
  vs[3] = HSv;
  Tensor q = randn(qs, DType::f32, &gen), k = randn(ks, DType::f32, &gen);
  Tensor v = randn(vs, DType::f32, &gen);
  Shape ys = qs;
  ys[3] = HSv;
  Tensor gy = randn(ys, DType::f32, &gen);
  if (transposed) {
    q = heads_transposed(q);
    k = heads_transposed(k);
    v = heads_transposed(v);
  }
  Result a = run_attention(true, q, k, v, causal, gy, mask);
  Result b = run_attention(false, q, k, v, causal, gy, mask);
  std::string what = shape_str(qs) + " S=" + std::to_string(S) + (causal ? " causal" : "") +
                     (transposed ? " transposed" : "") +
                     (mask.defined() ? " mask " + shape_str(mask.shape()) : "");
  EXPECT_EQ(moxing::testing::compare(a.y, b.y, 1e-5, 1e-5), "") << what;
  EXPECT_EQ(moxing::testing::compare(a.dq, b.dq, 1e-5, 1e-5), "") << what << " dq";
  EXPECT_EQ(moxing::testing::compare(a.dk, b.dk, 1e-5, 1e-5), "") << what << " dk";
  EXPECT_EQ(moxing::testing::compare(a.dv, b.dv, 1e-5, 1e-5), "") << what << " dv";
}

}  // namespace

TEST(Attention, FusedPathRecordsOneNode) {
  Tensor q = zeros({1, 2, 3, 4}).requires_grad_();
  Tensor y = scaled_dot_product_attention(q, q, q, {}, 0.0, true);
  EXPECT_EQ(y.grad_fn()->name, "scaled_dot_product_attention");
  Tensor m = scaled_dot_product_attention_math(q, q, q, {}, 0.0, true);
  EXPECT_EQ(m.grad_fn()->name, "matmul");
  Tensor masked = scaled_dot_product_attention(q, q, q, ones({3, 3}, DType::boolean));
  EXPECT_EQ(masked.grad_fn()->name, "scaled_dot_product_attention");
  Tensor dropped = scaled_dot_product_attention(q, q, q, {}, 0.5);
  EXPECT_EQ(dropped.grad_fn()->name, "scaled_dot_product_attention");
  Tensor all_dropped = scaled_dot_product_attention(q, q, q, {}, 1.0);
  EXPECT_EQ(all_dropped.grad_fn()->name, "matmul");
}

TEST(Attention, FusedMatchesMath) {
  uint64_t seed = 40;
  for (bool causal : {false, true}) {
    for (bool transposed : {false, true}) {
      expect_fused_matches_math({2, 3, 17, 8}, 17, 8, causal, transposed, seed++);
      expect_fused_matches_math({1, 2, 130, 16}, 130, 16, causal, transposed, seed++);
      expect_fused_matches_math({2, 2, 70, 8}, 150, 5, causal, transposed, seed++);
      expect_fused_matches_math({2, 2, 150, 8}, 70, 8, causal, transposed, seed++);
      expect_fused_matches_math({1, 3, 1, 64}, 300, 64, causal, transposed, seed++);
    }
  }
}

TEST(Attention, FusedMatchesMathWithMasks) {
  Generator gen(45);
  // key padding (B,1,1,S): batch 1 sees its first 40 keys
  Tensor pad = lt(arange(150, DType::f32).reshape({1, 1, 1, 150}), tensor({150, 40}, {2, 1, 1, 1}));
  expect_fused_matches_math({2, 2, 70, 8}, 150, 8, false, true, 46, pad);
  // (T,S) bool mask with the diagonal always on, so that no row is empty
  Tensor ts = gt(add(rand({70, 70}, DType::f32, &gen), eye(70)), 0.5);
  expect_fused_matches_math({2, 3, 70, 8}, 70, 8, false, false, 47, ts);
  expect_fused_matches_math({2, 3, 70, 8}, 70, 8, false, false, 48,
                            randn({2, 3, 70, 70}, DType::f32, &gen));
  expect_fused_matches_math({1, 3, 1, 64}, 300, 64, false, false, 49,
                            randn({1, 300}, DType::f32, &gen));
}

TEST(Attention, FusedDropoutMatchesMathForOneSeed) {
  for (int64_t T : {1, 70}) {
    for (bool causal : {false, true}) {
      Generator data(60);
      Tensor q = heads_transposed(randn({2, 3, T, 8}, DType::f32, &data));
      Tensor k = randn({2, 3, 90, 8}, DType::f32, &data),
             v = randn({2, 3, 90, 8}, DType::f32, &data);
      Tensor gy = randn({2, 3, T, 8}, DType::f32, &data);
      Result r[2];
      for (int fused = 0; fused < 2; ++fused) {
        Tensor ql = q.detach().requires_grad_(), kl = k.detach().requires_grad_();
        Tensor vl = v.detach().requires_grad_();
        Generator gen(61);
        Tensor y =
            fused ? scaled_dot_product_attention(ql, kl, vl, {}, 0.2, causal, std::nullopt, &gen)
                  : scaled_dot_product_attention_math(ql, kl, vl, {}, 0.2, causal, std::nullopt,
                                                      &gen);
        y.backward(gy);
        r[fused] = {y.detach(), ql.grad(), kl.grad(), vl.grad()};
      }
      std::string what = "T=" + std::to_string(T) + (causal ? " causal" : "");
      EXPECT_EQ(moxing::testing::compare(r[1].y, r[0].y, 1e-5, 1e-5), "") << what;
      EXPECT_EQ(moxing::testing::compare(r[1].dq, r[0].dq, 1e-5, 1e-5), "") << what << " dq";
      EXPECT_EQ(moxing::testing::compare(r[1].dk, r[0].dk, 1e-5, 1e-5), "") << what << " dk";
      EXPECT_EQ(moxing::testing::compare(r[1].dv, r[0].dv, 1e-5, 1e-5), "") << what << " dv";
    }
  }
}

TEST(Attention, FloatMaskThatNeedsAGradientGetsOne) {
  Generator gen(53);
  Tensor q = randn({1, 2, 3, 4}, DType::f32, &gen), k = randn({1, 2, 5, 4}, DType::f32, &gen);
  Tensor m = randn({3, 5}, DType::f32, &gen).requires_grad_();
  Tensor y = scaled_dot_product_attention(q, k, k, m);
  y.sum().backward();
  EXPECT_TRUE(m.grad().defined());
}

TEST(Attention, FusedInferenceMatchesTraining) {
  Generator gen(50);
  Tensor q = randn({2, 2, 140, 8}, DType::f32, &gen), k = randn({2, 2, 140, 8}, DType::f32, &gen);
  Tensor v = randn({2, 2, 140, 8}, DType::f32, &gen);
  Tensor with_grad = scaled_dot_product_attention(q.detach().requires_grad_(), k, v, {}, 0.0, true);
  NoGradGuard no_grad;
  Tensor without = scaled_dot_product_attention(q, k, v, {}, 0.0, true);
  EXPECT_EQ(moxing::testing::compare(without, with_grad.detach(), 0.0, 0.0), "");
}

TEST(Attention, FusedGivesTheSameBitsForOneAndTwoThreads) {
  Generator gen(51);
  Tensor q = randn({2, 3, 90, 16}, DType::f32, &gen), k = randn({2, 3, 90, 16}, DType::f32, &gen);
  Tensor v = randn({2, 3, 90, 16}, DType::f32, &gen), gy = randn({2, 3, 90, 16}, DType::f32, &gen);
  const int before = num_threads();
  set_num_threads(1);
  Result one = run_attention(true, q, k, v, true, gy);
  set_num_threads(2);
  Result two = run_attention(true, q, k, v, true, gy);
  set_num_threads(before);
  EXPECT_EQ(moxing::testing::compare(one.y, two.y, 0.0, 0.0), "");
  EXPECT_EQ(moxing::testing::compare(one.dq, two.dq, 0.0, 0.0), "");
  EXPECT_EQ(moxing::testing::compare(one.dk, two.dk, 0.0, 0.0), "");
  EXPECT_EQ(moxing::testing::compare(one.dv, two.dv, 0.0, 0.0), "");
}

TEST(Attention, FusedGradcheckOnStridedHeads) {
  auto f = [](const V& x) {
    return scaled_dot_product_attention(heads_transposed(x[0]), x[1].transpose(1, 2), x[2], {}, 0.0,
                                        true);
  };
  Generator data(52);
  V in{randn({1, 2, 5, 3}, DType::f64, &data).requires_grad_(),
       randn({1, 7, 2, 3}, DType::f64, &data).requires_grad_(),
       randn({1, 2, 7, 2}, DType::f64, &data).requires_grad_()};
  auto r = autograd::gradcheck(f, in);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Attention, DropoutMatchesTheWrittenOutComposite) {
  Generator data(21);
  Tensor q = randn({2, 2, 4, 3}, DType::f64, &data);
  Tensor k = randn({2, 2, 5, 3}, DType::f64, &data);
  Tensor v = randn({2, 2, 5, 3}, DType::f64, &data);
  Generator g1(99), g2(99);
  Tensor y = scaled_dot_product_attention(q, k, v, {}, 0.5, false, std::nullopt, &g1);
  Tensor attn = softmax(div(matmul(q, k.transpose(-2, -1)), std::sqrt(3.0)), -1);
  Tensor ref = matmul(dropout(attn, 0.5, true, &g2), v);
  EXPECT_EQ(moxing::testing::compare(y, ref, 1e-14, 1e-12), "");
}

TEST(Attention, GradcheckWithDropoutAndFixedSeed) {
  auto f = [](const V& x) {
    Generator gen(3);
    return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.3, true, std::nullopt, &gen);
  };
  Generator data(22);
  V in{randn({1, 2, 3, 2}, DType::f64, &data).requires_grad_(),
       randn({1, 2, 3, 2}, DType::f64, &data).requires_grad_(),
       randn({1, 2, 3, 2}, DType::f64, &data).requires_grad_()};
  auto r = autograd::gradcheck(f, in);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Attention, CausalFirstQueryAttendsOnlyTheFirstKey) {
  Generator data(23);
  Tensor q = randn({1, 1, 3, 4}, DType::f64, &data);
  Tensor k = randn({1, 1, 3, 4}, DType::f64, &data);
  Tensor v = randn({1, 1, 3, 4}, DType::f64, &data);
  Tensor y = scaled_dot_product_attention(q, k, v, {}, 0.0, true);
  EXPECT_EQ(moxing::testing::compare(y.select(2, 0), v.select(2, 0), 1e-14, 1e-12), "");
}

TEST(Attention, Errors) {
  Tensor q = zeros({2, 2, 3, 4}), k = zeros({2, 2, 5, 4}), v = zeros({2, 2, 5, 4});
  expect_error(
      [&] {
        scaled_dot_product_attention(q, zeros({2, 2, 5, 3}), v);
      },
      "scaled_dot_product_attention: q [2, 2, 3, 4] and k [2, 2, 5, 3] differ in head "
      "size");
  expect_error(
      [&] {
        scaled_dot_product_attention(q, k, zeros({2, 2, 6, 4}));
      },
      "k [2, 2, 5, 4] and v [2, 2, 6, 4] differ in sequence length");
  expect_error(
      [&] {
        scaled_dot_product_attention(q, k, v, ones({2, 1, 1, 4}));
      },
      "scaled_dot_product_attention: shapes [2, 2, 3, 5] and [2, 1, 1, 4] cannot be "
      "broadcast");
  expect_error(
      [&] {
        scaled_dot_product_attention(q, k, v, ones({3, 2, 2, 3, 5}));
      },
      "attn_mask of shape [3, 2, 2, 3, 5] does not broadcast to [2, 2, 3, 5]");
  expect_error([&] { scaled_dot_product_attention(q, k, v, ones({5}), 0.0, true); },
               "pass either attn_mask or is_causal, not both");
  expect_error([&] { scaled_dot_product_attention(q, k, v, ones({5}, DType::f64)); },
               "attn_mask must be bool or of q's dtype f32, got f64");
  expect_error([&] { scaled_dot_product_attention(q, k, v, {}, 1.5); },
               "dropout_p must be in [0, 1], got 1.5");
  expect_error([&] { scaled_dot_product_attention(q, k.to(DType::f64), v); },
               "q, k, v must share one floating dtype, got f32, f64, f32");
}
