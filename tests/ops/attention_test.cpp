// Attention family: values from tests/fixtures/attention.py (PyTorch), f64 gradchecks,
// non-contiguous inputs, attention dropout against the written-out composite, and errors.
#include <gtest/gtest.h>

#include <cmath>

#include "moxing/ops/attention.h"
#include "moxing/ops/dropout.h"
#include "moxing/ops/linalg.h"
#include "moxing/ops/softmax.h"
#include "op_harness.h"

using namespace moxing;
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
    });

namespace {

void expect_error(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    FAIL() << "expected an error containing: " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

}  // namespace

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
