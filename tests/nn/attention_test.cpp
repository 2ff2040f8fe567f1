// MultiheadAttention against torch (tests/fixtures/nn_transformer.py): self- and
// cross-attention, key padding, causal and additive masks, returned weights; both attention
// paths against each other, an f64 gradcheck, names and errors.
#include <gtest/gtest.h>

#include <limits>

#include "expect_error.h"
#include "moxing/nn/attention.h"
#include "nn_transformer_fixture.h"

using namespace moxing;
using moxing::testing::check_layer_fixture;
using moxing::testing::compare;
using moxing::testing::expect_error;
using V = std::vector<Tensor>;

namespace {

Tensor causal_mask(int64_t T) { return gt(triu(ones({T, T}), 1), 0.5); }

}  // namespace

TEST(MultiheadAttention, SelfAttentionMatchesTorch) {
  nn::MultiheadAttention m(8, 2);
  check_layer_fixture("mha_self", m, false, [&m](const V& x) {
    return V{m.forward(x[0], x[0], x[0], {}, false).output};
  });
}

TEST(MultiheadAttention, CrossAttentionWithKeyPaddingMatchesTorch) {
  nn::MultiheadAttention m(8, 2, 0.0, true, true);
  check_layer_fixture("mha_cross_key_padding", m, false, [&m](const V& x) {
    return V{m.forward(x[0], x[1], x[2], x[3], false).output};
  });
}

TEST(MultiheadAttention, CausalMaskMatchesTorch) {
  nn::MultiheadAttention m(8, 2, 0.0, true, true);
  check_layer_fixture("mha_causal", m, false, [&m](const V& x) {
    return V{m.forward(x[0], x[0], x[0], {}, false, x[1]).output};
  });
}

TEST(MultiheadAttention, AveragedWeightsWithFloatMasksMatchTorch) {
  nn::MultiheadAttention m(8, 2);
  check_layer_fixture("mha_need_weights", m, false, [&m](const V& x) {
    nn::AttentionOutput r = m.forward(x[0], x[1], x[2], x[3], true, x[4]);
    return V{r.output, r.weights};
  });
}

TEST(MultiheadAttention, PerHeadWeightsWithoutBiasMatchTorch) {
  nn::MultiheadAttention m(8, 4, 0.0, false, true);
  EXPECT_EQ(m.named_parameters().size(), 2u);
  check_layer_fixture("mha_weights_per_head_no_bias", m, false, [&m](const V& x) {
    nn::AttentionOutput r = m.forward(x[0], x[0], x[0], {}, true, x[1], false);
    EXPECT_EQ(r.weights.shape(), (Shape{2, 4, 5, 5}));
    return V{r.output, r.weights};
  });
}

TEST(MultiheadAttention, NamesAndInitializationAsTorch) {
  nn::MultiheadAttention m(6, 3);
  std::vector<std::string> names;
  for (const auto& [k, t] : m.state_dict()) names.push_back(k);
  EXPECT_EQ(names, (std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight",
                                             "out_proj.bias"}));
  EXPECT_EQ(m.in_proj_weight.shape(), (Shape{18, 6}));
  EXPECT_EQ(m.in_proj_bias.to_vector<float>(), std::vector<float>(18, 0.0f));
  EXPECT_EQ(m.out_proj.as<nn::Linear>()->bias.to_vector<float>(), std::vector<float>(6, 0.0f));
  // xavier_uniform_ bound sqrt(6 / (6 + 18)) = 0.5
  for (float w : m.in_proj_weight.to_vector<float>()) EXPECT_LE(std::abs(w), 0.5f);
  EXPECT_EQ(m.head_dim, 2);
}

TEST(MultiheadAttention, BothPathsAndCausalFlagAgree) {
  Generator gen(3);
  nn::MultiheadAttention m(8, 2, 0.0, true, true, &gen);
  Tensor x = randn({2, 5, 8}, DType::f32, &gen);
  Tensor kpm = zeros({2, 5}, DType::boolean);
  {
    NoGradGuard no_grad;
    kpm = gt(from_vector(std::vector<float>{0, 0, 0, 0, 1, 0, 0, 0, 1, 1}, {2, 5}), 0.5);
  }
  Tensor with_mask = m.forward(x, x, x, kpm, true, causal_mask(5)).output;
  Tensor sdpa = m.forward(x, x, x, kpm, false, causal_mask(5)).output;
  Tensor flag = m.forward(x, x, x, kpm, false, {}, true, true).output;
  EXPECT_EQ(compare(sdpa, with_mask, 1e-6, 1e-5), "");
  EXPECT_EQ(compare(flag, with_mask, 1e-6, 1e-5), "");
  // the same key and value passed as separate tensors take the sliced projections
  Tensor x2 = x.clone();
  EXPECT_EQ(compare(m.forward(x, x2, x2.clone(), kpm, false, causal_mask(5)).output, with_mask,
                    1e-6, 1e-5),
            "");
}

TEST(MultiheadAttention, UnbatchedInputIsOneBatch) {
  Generator gen(4);
  nn::MultiheadAttention m(4, 2, 0.0, true, false, &gen);
  Tensor q = randn({3, 4}, DType::f32, &gen), kv = randn({5, 4}, DType::f32, &gen);
  nn::AttentionOutput one = m.forward(q, kv, kv);
  nn::AttentionOutput batched = m.forward(q.unsqueeze(1), kv.unsqueeze(1), kv.unsqueeze(1));
  EXPECT_EQ(one.output.shape(), (Shape{3, 4}));
  EXPECT_EQ(one.weights.shape(), (Shape{3, 5}));
  EXPECT_EQ(compare(one.output, batched.output.squeeze(1), 1e-7, 1e-6), "");
  EXPECT_EQ(compare(one.weights, batched.weights.squeeze(0), 1e-7, 1e-6), "");
}

TEST(MultiheadAttention, DropoutOnlyInTraining) {
  Generator gen(5);
  nn::MultiheadAttention m(4, 2, 0.5, true, true, &gen);
  Tensor x = randn({2, 6, 4}, DType::f32, &gen);
  m.eval();
  Tensor a = m.forward(x, x, x).output, b = m.forward(x, x, x, {}, false).output;
  EXPECT_EQ(compare(a, b, 1e-6, 1e-5), "");
  m.train();
  Tensor c = m.forward(x, x, x).output;
  EXPECT_NE(compare(c, a, 1e-6, 1e-5), "");
}

TEST(MultiheadAttention, GradcheckWithRespectToInputsInF64) {
  Generator gen(6);
  nn::MultiheadAttention m(4, 2, 0.0, true, true, &gen);
  m.to(DType::f64);
  Tensor q = randn({2, 3, 4}, DType::f64, &gen).requires_grad_();
  Tensor kv = randn({2, 3, 4}, DType::f64, &gen).requires_grad_();
  Tensor kpm = gt(from_vector(std::vector<double>{0, 0, 1, 0, 0, 0}, {2, 3}), 0.5);
  for (bool need_weights : {false, true}) {
    auto r = autograd::gradcheck(
        [&](const V& in) {
          nn::AttentionOutput o = m.forward(in[0], in[1], in[1], kpm, need_weights);
          return need_weights ? add(o.output, mean(o.weights, {-1}, true)) : o.output;
        },
        {q, kv});
    EXPECT_TRUE(r.ok) << "need_weights=" << need_weights << ": " << r.message;
  }
  auto r = autograd::gradcheck([&](const V& in) { return m.forward(in[0], in[0], in[0]).output; },
                               {q, m.in_proj_weight, m.out_proj.as<nn::Linear>()->weight});
  EXPECT_TRUE(r.ok) << "self-attention: " << r.message;
}

TEST(MultiheadAttention, Errors) {
  nn::MultiheadAttention m(8, 2, 0.0, true, true);
  expect_error([] { nn::MultiheadAttention(6, 4); },
               "MultiheadAttention: embed_dim 6 must be a positive multiple of num_heads 4");
  expect_error(
      [&] {
        m.forward(zeros({2, 3, 8}), zeros({2, 4, 6}), zeros({2, 4, 6}));
      },
      "MultiheadAttention: query [2, 3, 8], key [2, 4, 6] and value [2, 4, 6] must end "
      "in embed_dim 8");
  expect_error(
      [&] {
        m.forward(zeros({2, 3, 8}), zeros({2, 4, 8}), zeros({2, 5, 8}));
      },
      "disagree on the batch or on the key length");
  expect_error(
      [&] {
        m.forward(zeros({2, 3, 8}), zeros({4, 8}), zeros({4, 8}));
      },
      "must all be 3-d (batched) or all 2-d (unbatched)");
  expect_error(
      [&] {
        m.forward(zeros({2, 3, 8}), zeros({2, 4, 8}), zeros({2, 4, 8}), {}, true, causal_mask(3));
      },
      "MultiheadAttention: attn_mask of shape [3, 3] must be (T,S) = [3, 4] or (B*NH,T,S) = [4, "
      "3, 4]");
  expect_error(
      [&] {
        m.forward(zeros({2, 3, 8}), zeros({2, 4, 8}), zeros({2, 4, 8}), zeros({4, 2}));
      },
      "MultiheadAttention: key_padding_mask of shape [4, 2] must be [2, 4]");
  expect_error(
      [&] {
        m.forward(zeros({2, 3, 8}), zeros({2, 4, 8}), zeros({2, 4, 8}), zeros({2, 4}, DType::i64));
      },
      "MultiheadAttention: masks must be bool or floating, got i64");
}
