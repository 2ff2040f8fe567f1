// Transformer layers: the pre-norm / post-norm residual wiring of torch's
// TransformerEncoderLayer and TransformerDecoderLayer, and the layer stacks.
#include "moxing/nn/transformer.h"

#include <limits>

#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"

namespace moxing::nn {

namespace {

TransformerLayerOptions checked(const TransformerLayerOptions& o, const char* who) {
  MOXING_CHECK(o.activation == "relu" || o.activation == "gelu",
               "{}: activation must be \"relu\" or \"gelu\", got \"{}\"", who, o.activation);
  MOXING_CHECK(o.d_model > 0 && o.nhead > 0 && o.d_model % o.nhead == 0,
               "{}: d_model {} must be a positive multiple of nhead {}", who, o.d_model, o.nhead);
  MOXING_CHECK(o.dim_feedforward > 0, "{}: dim_feedforward must be positive, got {}", who,
               o.dim_feedforward);
  return o;
}

TransformerLayerOptions make_options(int64_t d_model, int64_t nhead, int64_t dim_feedforward,
                                     double dropout, const std::string& activation,
                                     double layer_norm_eps, bool batch_first, bool norm_first,
                                     bool bias) {
  return {d_model,        nhead,       dim_feedforward, dropout, activation,
          layer_norm_eps, batch_first, norm_first,      bias};
}

Tensor activate(const Tensor& x, const std::string& activation) {
  return activation == "gelu" ? gelu(x) : relu(x);
}

}  // namespace

Tensor generate_square_subsequent_mask(int64_t T, DType dtype) {
  MOXING_CHECK(T >= 0, "generate_square_subsequent_mask: size must be >= 0, got {}", T);
  MOXING_CHECK(is_floating(dtype),
               "generate_square_subsequent_mask: dtype must be floating, got {}",
               dtype_name(dtype));
  Tensor above = gt(triu(ones({T, T}, dtype), 1), 0.5);
  return masked_fill(zeros({T, T}, dtype), above, -std::numeric_limits<double>::infinity());
}

// ---- encoder layer

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerLayerOptions& o, Generator* gen)
    : options(checked(o, "TransformerEncoderLayer")) {
  self_attn = register_slot<MultiheadAttention>(
      "self_attn", std::make_shared<MultiheadAttention>(o.d_model, o.nhead, o.dropout, o.bias,
                                                        o.batch_first, gen));
  linear1 = register_slot<UnaryModule>(
      "linear1", std::make_shared<Linear>(o.d_model, o.dim_feedforward, o.bias, gen));
  dropout = register_slot<UnaryModule>("dropout", std::make_shared<Dropout>(o.dropout, gen));
  linear2 = register_slot<UnaryModule>(
      "linear2", std::make_shared<Linear>(o.dim_feedforward, o.d_model, o.bias, gen));
  norm1 = register_slot<UnaryModule>(
      "norm1", std::make_shared<LayerNorm>(Shape{o.d_model}, o.layer_norm_eps, true, o.bias));
  norm2 = register_slot<UnaryModule>(
      "norm2", std::make_shared<LayerNorm>(Shape{o.d_model}, o.layer_norm_eps, true, o.bias));
  dropout1 = register_slot<UnaryModule>("dropout1", std::make_shared<Dropout>(o.dropout, gen));
  dropout2 = register_slot<UnaryModule>("dropout2", std::make_shared<Dropout>(o.dropout, gen));
}

TransformerEncoderLayer::TransformerEncoderLayer(int64_t d_model, int64_t nhead,
                                                 int64_t dim_feedforward, double dropout,
                                                 const std::string& activation,
                                                 double layer_norm_eps, bool batch_first,
                                                 bool norm_first, bool bias, Generator* gen)
    : TransformerEncoderLayer(make_options(d_model, nhead, dim_feedforward, dropout, activation,
                                           layer_norm_eps, batch_first, norm_first, bias),
                              gen) {}

Tensor TransformerEncoderLayer::self_attention_block(const Tensor& x, const Tensor& mask,
                                                     const Tensor& key_padding_mask,
                                                     bool is_causal) {
  Tensor a = self_attn->forward(x, x, x, key_padding_mask, false, mask, true, is_causal).output;
  return dropout1->forward(a);
}

// linear2(dropout(activation(linear1(x)))), then dropout2
Tensor TransformerEncoderLayer::feed_forward_block(const Tensor& x) {
  Tensor h = dropout->forward(activate(linear1->forward(x), options.activation));
  return dropout2->forward(linear2->forward(h));
}

// pre-norm:  x = x + sa(norm1(x)); x = x + ff(norm2(x))
// post-norm: x = norm1(x + sa(x)); x = norm2(x + ff(x))
Tensor TransformerEncoderLayer::forward(const Tensor& src, const Tensor& src_mask,
                                        const Tensor& src_key_padding_mask, bool is_causal) {
  Tensor x = src;
  if (options.norm_first) {
    x = add(x, self_attention_block(norm1->forward(x), src_mask, src_key_padding_mask, is_causal));
    x = add(x, feed_forward_block(norm2->forward(x)));
  } else {
    x = norm1->forward(add(x, self_attention_block(x, src_mask, src_key_padding_mask, is_causal)));
    x = norm2->forward(add(x, feed_forward_block(x)));
  }
  return x;
}

// ---- decoder layer

TransformerDecoderLayer::TransformerDecoderLayer(const TransformerLayerOptions& o, Generator* gen)
    : options(checked(o, "TransformerDecoderLayer")) {
  auto attention = [&] {
    return std::make_shared<MultiheadAttention>(o.d_model, o.nhead, o.dropout, o.bias,
                                                o.batch_first, gen);
  };
  auto layer_norm = [&] {
    return std::make_shared<LayerNorm>(Shape{o.d_model}, o.layer_norm_eps, true, o.bias);
  };
  auto drop = [&] { return std::make_shared<Dropout>(o.dropout, gen); };
  self_attn = register_slot<MultiheadAttention>("self_attn", attention());
  multihead_attn = register_slot<MultiheadAttention>("multihead_attn", attention());
  linear1 = register_slot<UnaryModule>(
      "linear1", std::make_shared<Linear>(o.d_model, o.dim_feedforward, o.bias, gen));
  dropout = register_slot<UnaryModule>("dropout", drop());
  linear2 = register_slot<UnaryModule>(
      "linear2", std::make_shared<Linear>(o.dim_feedforward, o.d_model, o.bias, gen));
  norm1 = register_slot<UnaryModule>("norm1", layer_norm());
  norm2 = register_slot<UnaryModule>("norm2", layer_norm());
  norm3 = register_slot<UnaryModule>("norm3", layer_norm());
  dropout1 = register_slot<UnaryModule>("dropout1", drop());
  dropout2 = register_slot<UnaryModule>("dropout2", drop());
  dropout3 = register_slot<UnaryModule>("dropout3", drop());
}

TransformerDecoderLayer::TransformerDecoderLayer(int64_t d_model, int64_t nhead,
                                                 int64_t dim_feedforward, double dropout,
                                                 const std::string& activation,
                                                 double layer_norm_eps, bool batch_first,
                                                 bool norm_first, bool bias, Generator* gen)
    : TransformerDecoderLayer(make_options(d_model, nhead, dim_feedforward, dropout, activation,
                                           layer_norm_eps, batch_first, norm_first, bias),
                              gen) {}

Tensor TransformerDecoderLayer::feed_forward_block(const Tensor& x) {
  Tensor h = dropout->forward(activate(linear1->forward(x), options.activation));
  return dropout3->forward(linear2->forward(h));
}

// pre-norm:  x = x + sa(norm1(x)); x = x + mha(norm2(x), memory); x = x + ff(norm3(x))
// post-norm: x = norm1(x + sa(x)); x = norm2(x + mha(x, memory)); x = norm3(x + ff(x))
Tensor TransformerDecoderLayer::forward(const Tensor& tgt, const Tensor& memory,
                                        const Tensor& tgt_mask, const Tensor& memory_mask,
                                        const Tensor& tgt_key_padding_mask,
                                        const Tensor& memory_key_padding_mask, bool tgt_is_causal,
                                        bool memory_is_causal) {
  auto sa = [&](const Tensor& x) {
    return dropout1->forward(
        self_attn->forward(x, x, x, tgt_key_padding_mask, false, tgt_mask, true, tgt_is_causal)
            .output);
  };
  auto mha = [&](const Tensor& x) {
    return dropout2->forward(multihead_attn
                                 ->forward(x, memory, memory, memory_key_padding_mask, false,
                                           memory_mask, true, memory_is_causal)
                                 .output);
  };
  Tensor x = tgt;
  if (options.norm_first) {
    x = add(x, sa(norm1->forward(x)));
    x = add(x, mha(norm2->forward(x)));
    x = add(x, feed_forward_block(norm3->forward(x)));
  } else {
    x = norm1->forward(add(x, sa(x)));
    x = norm2->forward(add(x, mha(x)));
    x = norm3->forward(add(x, feed_forward_block(x)));
  }
  return x;
}

// ---- stacks

TransformerEncoder::TransformerEncoder(
    const std::function<std::shared_ptr<TransformerEncoderLayer>()>& make_layer, int64_t num_layers,
    std::shared_ptr<LayerNorm> final_norm) {
  MOXING_CHECK(num_layers >= 1, "TransformerEncoder: num_layers must be >= 1, got {}", num_layers);
  layers = register_slot<ModuleList>("layers", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < num_layers; ++i) layers->push_back(make_layer());
  if (final_norm) norm = register_slot<UnaryModule>("norm", std::move(final_norm));
}

TransformerEncoder::TransformerEncoder(const TransformerLayerOptions& options, int64_t num_layers,
                                       bool final_norm, Generator* gen)
    : TransformerEncoder(
          [&] { return std::make_shared<TransformerEncoderLayer>(options, gen); }, num_layers,
          final_norm ? std::make_shared<LayerNorm>(Shape{options.d_model}, options.layer_norm_eps,
                                                   true, options.bias)
                     : nullptr) {}

std::shared_ptr<TransformerEncoderLayer> TransformerEncoder::layer(int64_t i) const {
  return layers->at<TransformerEncoderLayer>(i);
}

Tensor TransformerEncoder::forward(const Tensor& src, const Tensor& mask,
                                   const Tensor& src_key_padding_mask, bool is_causal) {
  Tensor x = src;
  for (size_t i = 0; i < layers->size(); ++i) {
    x = layer(static_cast<int64_t>(i))->forward(x, mask, src_key_padding_mask, is_causal);
  }
  return norm ? norm->forward(x) : x;
}

TransformerDecoder::TransformerDecoder(
    const std::function<std::shared_ptr<TransformerDecoderLayer>()>& make_layer, int64_t num_layers,
    std::shared_ptr<LayerNorm> final_norm) {
  MOXING_CHECK(num_layers >= 1, "TransformerDecoder: num_layers must be >= 1, got {}", num_layers);
  layers = register_slot<ModuleList>("layers", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < num_layers; ++i) layers->push_back(make_layer());
  if (final_norm) norm = register_slot<UnaryModule>("norm", std::move(final_norm));
}

TransformerDecoder::TransformerDecoder(const TransformerLayerOptions& options, int64_t num_layers,
                                       bool final_norm, Generator* gen)
    : TransformerDecoder(
          [&] { return std::make_shared<TransformerDecoderLayer>(options, gen); }, num_layers,
          final_norm ? std::make_shared<LayerNorm>(Shape{options.d_model}, options.layer_norm_eps,
                                                   true, options.bias)
                     : nullptr) {}

std::shared_ptr<TransformerDecoderLayer> TransformerDecoder::layer(int64_t i) const {
  return layers->at<TransformerDecoderLayer>(i);
}

Tensor TransformerDecoder::forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask,
                                   const Tensor& memory_mask, const Tensor& tgt_key_padding_mask,
                                   const Tensor& memory_key_padding_mask, bool tgt_is_causal,
                                   bool memory_is_causal) {
  Tensor x = tgt;
  for (size_t i = 0; i < layers->size(); ++i) {
    x = layer(static_cast<int64_t>(i))
            ->forward(x, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                      memory_key_padding_mask, tgt_is_causal, memory_is_causal);
  }
  return norm ? norm->forward(x) : x;
}

}  // namespace moxing::nn
