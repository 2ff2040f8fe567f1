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
};

void register_gguf_layout(GgufLayout layout);
/// The layout of general.architecture; the error lists the architectures moxing reads.
const GgufLayout& find_gguf_layout(const std::string& architecture, const std::string& where);

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
