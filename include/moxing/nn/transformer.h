// Transformer encoder and decoder layers and their stacks (torch.nn.TransformerEncoderLayer,
// TransformerDecoderLayer, TransformerEncoder, TransformerDecoder), with torch's submodule
// names so that state_dicts load across. Not nn.Transformer itself, not the nested-tensor
// fast path.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "moxing/core/rng.h"
#include "moxing/nn/attention.h"
#include "moxing/nn/containers.h"
#include "moxing/nn/layers.h"

namespace moxing::nn {

/// (T,T) float mask with -inf above the diagonal and 0 elsewhere: query t attends keys s <= t.
/// Matches torch.nn.Transformer.generate_square_subsequent_mask.
Tensor generate_square_subsequent_mask(int64_t T, DType dtype = DType::f32);

/// The constructor arguments of both layer kinds, in torch's order and with its defaults;
/// written with designated initializers: {.d_model = 512, .nhead = 8, .norm_first = true}.
struct TransformerLayerOptions {
  int64_t d_model = 512;
  int64_t nhead = 8;
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  std::string activation = "relu";  // "relu" or "gelu" (exact erf form)
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;  // pre-norm: x + f(norm(x)); post-norm: norm(x + f(x))
  bool bias = true;         // in the linear, attention and layer-norm layers
};

/// Self-attention then a feed-forward block, each with a residual connection and a LayerNorm:
/// src (T,B,C) ((B,T,C) when batch_first) -> same shape. Submodules self_attn, linear1,
/// dropout, linear2, norm1, norm2, dropout1, dropout2. Matches torch.nn.TransformerEncoderLayer.
class TransformerEncoderLayer : public UnaryModule {
 public:
  explicit TransformerEncoderLayer(const TransformerLayerOptions& options,
                                   Generator* gen = nullptr);
  TransformerEncoderLayer(int64_t d_model, int64_t nhead, int64_t dim_feedforward = 2048,
                          double dropout = 0.1, const std::string& activation = "relu",
                          double layer_norm_eps = 1e-5, bool batch_first = false,
                          bool norm_first = false, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& src) override { return forward(src, Tensor()); }
  /// src_mask (T,T) or (B*NH,T,T) and src_key_padding_mask (B,T) as MultiheadAttention's
  /// attn_mask and key_padding_mask; is_causal as there.
  Tensor forward(const Tensor& src, const Tensor& src_mask,
                 const Tensor& src_key_padding_mask = Tensor(), bool is_causal = false);
  std::string type_name() const override { return "TransformerEncoderLayer"; }

  TransformerLayerOptions options;
  Slot<MultiheadAttention> self_attn;
  Slot<UnaryModule> linear1, linear2;  // Linear when built
  Slot<UnaryModule> norm1, norm2;      // LayerNorm when built
  Slot<UnaryModule> dropout, dropout1, dropout2;

 private:
  Tensor self_attention_block(const Tensor& x, const Tensor& mask, const Tensor& key_padding_mask,
                              bool is_causal);
  Tensor feed_forward_block(const Tensor& x);
};

/// Self-attention, cross-attention over memory, then a feed-forward block, each with a
/// residual connection and a LayerNorm: tgt (T,B,C), memory (S,B,C) (batch first when
/// batch_first) -> (T,B,C). Submodules as the encoder layer plus multihead_attn, norm3,
/// dropout3. Matches torch.nn.TransformerDecoderLayer.
class TransformerDecoderLayer : public Module {
 public:
  explicit TransformerDecoderLayer(const TransformerLayerOptions& options,
                                   Generator* gen = nullptr);
  TransformerDecoderLayer(int64_t d_model, int64_t nhead, int64_t dim_feedforward = 2048,
                          double dropout = 0.1, const std::string& activation = "relu",
                          double layer_norm_eps = 1e-5, bool batch_first = false,
                          bool norm_first = false, bool bias = true, Generator* gen = nullptr);
  /// tgt_mask (T,T), memory_mask (T,S), tgt_key_padding_mask (B,T), memory_key_padding_mask
  /// (B,S), each optional, as MultiheadAttention's masks.
  Tensor forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask = Tensor(),
                 const Tensor& memory_mask = Tensor(),
                 const Tensor& tgt_key_padding_mask = Tensor(),
                 const Tensor& memory_key_padding_mask = Tensor(), bool tgt_is_causal = false,
                 bool memory_is_causal = false);
  std::string type_name() const override { return "TransformerDecoderLayer"; }

  TransformerLayerOptions options;
  Slot<MultiheadAttention> self_attn, multihead_attn;
  Slot<UnaryModule> linear1, linear2;     // Linear when built
  Slot<UnaryModule> norm1, norm2, norm3;  // LayerNorm when built
  Slot<UnaryModule> dropout, dropout1, dropout2, dropout3;

 private:
  Tensor feed_forward_block(const Tensor& x);
};

/// num_layers encoder layers applied in turn (parameters "layers.N.*"), then norm when given.
/// Matches torch.nn.TransformerEncoder (without its nested-tensor path).
class TransformerEncoder : public UnaryModule {
 public:
  /// Layers made by make_layer (called num_layers times), and an optional final norm.
  TransformerEncoder(const std::function<std::shared_ptr<TransformerEncoderLayer>()>& make_layer,
                     int64_t num_layers, std::shared_ptr<LayerNorm> norm = nullptr);
  /// Layers built from options; final_norm adds LayerNorm(d_model, layer_norm_eps).
  TransformerEncoder(const TransformerLayerOptions& options, int64_t num_layers,
                     bool final_norm = false, Generator* gen = nullptr);
  Tensor forward(const Tensor& src) override { return forward(src, Tensor()); }
  /// mask and src_key_padding_mask are passed to every layer.
  Tensor forward(const Tensor& src, const Tensor& mask,
                 const Tensor& src_key_padding_mask = Tensor(), bool is_causal = false);
  std::string type_name() const override { return "TransformerEncoder"; }
  /// Layer i (negative counts from the end).
  std::shared_ptr<TransformerEncoderLayer> layer(int64_t i) const;

  Slot<ModuleList> layers;
  Slot<UnaryModule> norm;  // empty without a final norm
};

/// num_layers decoder layers applied in turn (parameters "layers.N.*"), then norm when given.
/// Matches torch.nn.TransformerDecoder.
class TransformerDecoder : public Module {
 public:
  TransformerDecoder(const std::function<std::shared_ptr<TransformerDecoderLayer>()>& make_layer,
                     int64_t num_layers, std::shared_ptr<LayerNorm> norm = nullptr);
  TransformerDecoder(const TransformerLayerOptions& options, int64_t num_layers,
                     bool final_norm = false, Generator* gen = nullptr);
  /// The masks are passed to every layer.
  Tensor forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask = Tensor(),
                 const Tensor& memory_mask = Tensor(),
                 const Tensor& tgt_key_padding_mask = Tensor(),
                 const Tensor& memory_key_padding_mask = Tensor(), bool tgt_is_causal = false,
                 bool memory_is_causal = false);
  std::string type_name() const override { return "TransformerDecoder"; }
  std::shared_ptr<TransformerDecoderLayer> layer(int64_t i) const;

  Slot<ModuleList> layers;
  Slot<UnaryModule> norm;  // empty without a final norm
};

}  // namespace moxing::nn
