// Transformer layers and stacks against torch (tests/fixtures/nn_transformer.py): pre-norm
// and post-norm encoder layers with relu and gelu, masks and padding, decoder layers, a 2-layer
// encoder with a final norm and a 2-layer decoder; names, options and errors.
#include <gtest/gtest.h>

#include <limits>

#include "expect_error.h"
#include "moxing/nn/transformer.h"
#include "nn_transformer_fixture.h"

using namespace moxing;
using moxing::testing::check_layer_fixture;
using moxing::testing::compare;
using moxing::testing::expect_error;
using V = std::vector<Tensor>;

namespace {

// the fixture's sizes: d_model 8, 2 heads, feed-forward 16, no dropout
nn::TransformerLayerOptions small(nn::TransformerLayerOptions o = {}) {
  o.d_model = 8;
  o.nhead = 2;
  o.dim_feedforward = 16;
  o.dropout = 0.0;
  return o;
}

std::vector<std::string> names(const nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [k, t] : m.state_dict()) out.push_back(k);
  return out;
}

}  // namespace

TEST(TransformerEncoderLayer, PostNormReluMatchesTorch) {
  nn::TransformerEncoderLayer m(8, 2, 16, 0.0);
  check_layer_fixture("encoder_layer_post_relu", m, false,
                      [&m](const V& x) { return V{m.forward(x[0])}; });
}

TEST(TransformerEncoderLayer, PreNormGeluWithPaddingMatchesTorch) {
  nn::TransformerEncoderLayer m(
      small({.activation = "gelu", .batch_first = true, .norm_first = true}));
  check_layer_fixture("encoder_layer_pre_gelu_padding", m, false,
                      [&m](const V& x) { return V{m.forward(x[0], {}, x[1])}; });
}

TEST(TransformerEncoderLayer, PostNormGeluCausalMatchesTorch) {
  nn::TransformerEncoderLayer m(small({.activation = "gelu", .batch_first = true}));
  check_layer_fixture("encoder_layer_post_gelu_causal", m, false,
                      [&m](const V& x) { return V{m.forward(x[0], x[1], {}, true)}; });
}

TEST(TransformerEncoderLayer, PreNormReluMatchesTorch) {
  nn::TransformerEncoderLayer m(8, 2, 16, 0.0, "relu", 1e-3, false, true);
  check_layer_fixture("encoder_layer_pre_relu", m, false,
                      [&m](const V& x) { return V{m.forward(x[0])}; });
}

TEST(TransformerDecoderLayer, PostNormCausalWithMemoryPaddingMatchesTorch) {
  nn::TransformerDecoderLayer m(small({.batch_first = true}));
  check_layer_fixture("decoder_layer_post_causal_memory_padding", m, false, [&m](const V& x) {
    return V{m.forward(x[0], x[1], x[2], {}, {}, x[3], true)};
  });
}

TEST(TransformerDecoderLayer, PreNormGeluMatchesTorch) {
  nn::TransformerDecoderLayer m(8, 2, 16, 0.0, "gelu", 1e-5, false, true);
  check_layer_fixture("decoder_layer_pre_gelu", m, false,
                      [&m](const V& x) { return V{m.forward(x[0], x[1], x[2])}; });
}

TEST(TransformerEncoder, TwoLayersWithFinalNormMatchTorch) {
  nn::TransformerEncoder m(small({.batch_first = true}), 2, true);
  check_layer_fixture("encoder_2_layers_norm", m, false,
                      [&m](const V& x) { return V{m.forward(x[0], {}, x[1])}; });
}

TEST(TransformerDecoder, TwoLayersMatchTorch) {
  auto make = [] {
    return std::make_shared<nn::TransformerDecoderLayer>(small({.norm_first = true}));
  };
  nn::TransformerDecoder m(make, 2);
  EXPECT_FALSE(m.norm);
  check_layer_fixture("decoder_2_layers", m, false,
                      [&m](const V& x) { return V{m.forward(x[0], x[1], x[2])}; });
}

TEST(Transformer, SubmoduleNamesAsTorch) {
  nn::TransformerEncoderLayer enc(small());
  EXPECT_EQ(names(enc),
            (std::vector<std::string>{
                "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"}));
  nn::TransformerDecoderLayer dec(small({.bias = false}));
  EXPECT_EQ(names(dec),
            (std::vector<std::string>{
                "self_attn.in_proj_weight", "self_attn.out_proj.weight",
                "multihead_attn.in_proj_weight", "multihead_attn.out_proj.weight", "linear1.weight",
                "linear2.weight", "norm1.weight", "norm2.weight", "norm3.weight"}));
  nn::TransformerEncoder stack(small(), 3, true);
  std::vector<std::string> n = names(stack);
  EXPECT_EQ(n.size(), 3 * 12u + 2);
  EXPECT_EQ(n[0], "layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(n[24], "layers.2.self_attn.in_proj_weight");
  EXPECT_EQ(n.back(), "norm.bias");
  EXPECT_EQ(stack.layer(-1).get(), stack.layers->at<nn::TransformerEncoderLayer>(2).get());
  nn::TransformerDecoder dstack(small(), 2);
  EXPECT_EQ(names(dstack)[0], "layers.0.self_attn.in_proj_weight");
}

TEST(Transformer, CausalFlagAloneEqualsCausalMask) {
  Generator gen(9);
  nn::TransformerEncoder enc(small({.batch_first = true}), 2, true, &gen);
  Tensor x = randn({2, 5, 8}, DType::f32, &gen);
  Tensor mask = gt(triu(ones({5, 5}), 1), 0.5);
  Tensor float_mask = nn::generate_square_subsequent_mask(5);
  EXPECT_EQ(float_mask.to_vector<float>()[1], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(float_mask.to_vector<float>()[5], 0.0f);
  EXPECT_EQ(compare(enc.forward(x, float_mask), enc.forward(x, mask), 1e-6, 1e-5), "");
  EXPECT_EQ(compare(enc.forward(x, {}, {}, true), enc.forward(x, mask), 1e-6, 1e-5), "");
  nn::TransformerDecoderLayer dec(small(), &gen);
  Tensor tgt = randn({5, 2, 8}, DType::f32, &gen), mem = randn({3, 2, 8}, DType::f32, &gen);
  EXPECT_EQ(
      compare(dec.forward(tgt, mem, {}, {}, {}, {}, true), dec.forward(tgt, mem, mask), 1e-6, 1e-5),
      "");
}

TEST(Transformer, DropoutOnlyInTraining) {
  Generator gen(10);
  nn::TransformerLayerOptions o = small();
  o.dropout = 0.3;
  nn::TransformerEncoderLayer m(o, &gen);
  Tensor x = randn({4, 2, 8}, DType::f32, &gen);
  m.eval();
  Tensor a = m.forward(x), b = m.forward(x);
  EXPECT_EQ(compare(a, b, 0, 0), "");
  m.train();
  EXPECT_NE(compare(m.forward(x), a, 1e-6, 1e-5), "");
}

TEST(Transformer, Errors) {
  expect_error([] { nn::TransformerEncoderLayer(small({.activation = "tanh"})); },
               "TransformerEncoderLayer: activation must be \"relu\" or \"gelu\", got \"tanh\"");
  expect_error([] { nn::TransformerDecoderLayer(9, 2); },
               "TransformerDecoderLayer: d_model 9 must be a positive multiple of nhead 2");
  expect_error([] { nn::TransformerEncoder(small(), 0); },
               "TransformerEncoder: num_layers must be >= 1, got 0");
  nn::TransformerEncoderLayer m(small());
  expect_error([&] { m.forward(zeros({3, 2, 6})); }, "must end in embed_dim 8");
}
