// Layers with quantized weights (q8_0, q4_0, q4_1, q4_k, q6_k), and the module surgery that puts
// them in place of Linear and Embedding layers in any model. The weight is frozen (a parameter
// without requires_grad); the bias stays f32 and trainable, and gradients flow to the input.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "moxing/nn/layers.h"

namespace moxing::nn {

/// y = x W^T + b with W (out, in) quantized: Linear with a quantized weight. type is a block
/// type (q8_0, q4_0, q4_1, q4_k, q6_k) or i8: per-channel int8, a weight i8 (out, in) with an f32
/// weight_scale (out) — as model.safetensors stores them.
class QuantizedLinear : public UnaryModule {
 public:
  /// Zero weights of type (filled by load_state_dict); bias f32 when with_bias.
  QuantizedLinear(int64_t in_features, int64_t out_features, bool with_bias, DType type);
  /// linear's weight quantized to type; its bias kept (the same tensor).
  static std::shared_ptr<QuantizedLinear> from_linear(const Linear& linear, DType type);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "QuantizedLinear"; }
  std::string extra_repr() const override;
  int64_t in_features, out_features;
  DType type;
  /// Multiply in f32 with the dequantized weight instead of in 8-bit integers.
  bool f32_compute = false;
  Tensor weight, bias;
  Tensor weight_scale;  // i8 only
};

/// Rows of a quantized (V, C) table: Embedding with a quantized weight (not trainable).
class QuantizedEmbedding : public UnaryModule {
 public:
  QuantizedEmbedding(int64_t num_embeddings, int64_t embedding_dim, DType type);
  static std::shared_ptr<QuantizedEmbedding> from_embedding(const Embedding& embedding, DType type);
  Tensor forward(const Tensor& ids) override;
  std::string type_name() const override { return "QuantizedEmbedding"; }
  std::string extra_repr() const override;
  int64_t num_embeddings, embedding_dim;
  DType type;
  Tensor weight;
};

/// What quantize_modules does.
struct QuantizeOptions {
  /// The type of Linear weights (q8_0, q4_0, q4_1, q4_k, or i8: per-channel int8).
  DType type = DType::q8_0;
  /// The type for a weight whose rows do not divide into type's blocks (q4_k needs multiples of
  /// 256 inputs): llama.cpp's rule picks Q5_0 there, which moxing lacks, so the next larger
  /// type it has. A row that does not divide into 32 either stays f32.
  DType fallback = DType::q8_0;
  /// The type of Embedding tables and of an output head tied to one, or nullopt to keep them
  /// f32 (more precision where it costs least time: a lookup reads one row).
  std::optional<DType> embedding_type = DType::q8_0;
  /// Paths (named_modules names) left as they are.
  std::function<bool(const std::string& path)> skip;
};

/// Per module path, the dtype its weight got (f32 when left alone), for `moxing info`.
using QuantizeReport = std::map<std::string, DType>;

/// Replaces every Linear (and Embedding, see options) in root by its quantized layer, the
/// weights quantized from their current values; a Linear that shares its weight with an
/// Embedding (a tied output head) shares the quantized table too.
QuantizeReport quantize_modules(Module& root, const QuantizeOptions& options);

/// The type a weight of rows of `in` values gets: type, or fallback when the rows do not divide
/// into type's blocks, or f32 when they do not divide into fallback's either.
DType quantized_type_for(int64_t in, DType type, DType fallback);

/// The inverse: every QuantizedLinear and QuantizedEmbedding in root back to a Linear or
/// Embedding with the dequantized f32 weight (tied tables stay tied). Returns how many.
int dequantize_modules(Module& root);

/// The type a name ("q8_0", "q4_0", "q4_1", "q4_k", or "int8" for per-channel int8: i8) gives
/// quantize_modules; what names the option in the error for any other name.
DType quantize_type_from_name(const std::string& name, const std::string& what);

/// Sets f32_compute on every QuantizedLinear in root.
void set_f32_compute(Module& root, bool on);

}  // namespace moxing::nn
