// How a family's models are laid out in GGUF files (llama.cpp's names and conventions): the
// general.architecture it answers to, its config.json fields from the file's metadata, the
// Hugging Face name of each GGUF tensor and any change of layout on the way (llama.cpp stores
// Llama's q and k projections with the rotary halves interleaved). A family registers its layout
// with MOXING_REGISTER_GGUF_LAYOUT in its own file; models::from_pretrained reads a .gguf file
// through it.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "moxing/core/tensor.h"
#include "moxing/io/gguf.h"
#include "moxing/models/family.h"
#include "moxing/tokenizers/tokenizer.h"

namespace moxing::models {

struct GgufLayout {
  /// general.architecture ("llama")
  std::string architecture;
  /// config.json fields (model_type and architectures included) from the file's metadata
  std::function<nlohmann::json(const GgufFile& file)> config;
  /// The Hugging Face name of a GGUF tensor ("blk.0.attn_q.weight" ->
  /// "model.layers.0.self_attn.q_proj.weight"); nullopt for a tensor the model does not take.
  std::function<std::optional<std::string>(const std::string& gguf_name)> name;
  /// The tensor in the model's layout (dequantized f32 or the file's float type); may be null.
  std::function<Tensor(const std::string& hf_name, const Tensor& t, const nlohmann::json& config)>
      transform;

  // ---- writing (optional: a layout without these reads only)
  /// config.json's model_type this layout writes ("llama").
  std::string model_type;
  /// The architecture's metadata ("llama.block_count", ...) from the model's config.
  std::function<GgufMetadata(const nlohmann::json& config)> metadata;
  /// The GGUF name of a model tensor (the inverse of name); nullopt leaves it out.
  std::function<std::optional<std::string>(const std::string& hf_name)> gguf_name;
  /// The tensor in the file's layout (the inverse of transform); may be null.
  std::function<Tensor(const std::string& hf_name, const Tensor& t, const nlohmann::json& config)>
      to_file;
};

void register_gguf_layout(GgufLayout layout);
/// The layout of general.architecture; the error lists the architectures moxing reads.
const GgufLayout& find_gguf_layout(const std::string& architecture, const std::string& where);

/// The layout that writes config.json's model_type; the error lists those moxing writes.
const GgufLayout& find_gguf_writer(const std::string& model_type, const std::string& where);

/// Writes model (a family with a GGUF layout that writes: llama, gpt2) as a GGUF file llama.cpp
/// loads: general.* and the architecture's metadata, the tokenizer's tokenizer.ggml.* (byte-level
/// BPE), and every weight once in llama.cpp's names and layout, quantized weights in their
/// block types (f32 otherwise; 1-D tensors always f32). Atomic: a crash leaves no partial file.
/// chat_template, when not empty, is written as tokenizer.chat_template.
void save_gguf_model(const std::string& path, const Model& model,
                     const tokenizers::Tokenizer& tokenizer, const std::string& name = "",
                     const std::string& chat_template = "");

/// The value of metadata key as an integer, or fallback when the file has none.
int64_t gguf_int(const GgufFile& file, const std::string& key,
                 std::optional<int64_t> fallback = {});
/// The value of metadata key as a number, or fallback when the file has none.
double gguf_number(const GgufFile& file, const std::string& key,
                   std::optional<double> fallback = {});

struct GgufLayoutRegistrar {
  explicit GgufLayoutRegistrar(GgufLayout (*make)()) { register_gguf_layout(make()); }
};

}  // namespace moxing::models

#define MOXING_REGISTER_GGUF_LAYOUT(make) \
  static const ::moxing::models::GgufLayoutRegistrar moxing_gguf_layout_##make { make }
