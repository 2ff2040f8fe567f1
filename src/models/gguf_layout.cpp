// The registry of GGUF layouts and the metadata helpers the layouts share.
#include "moxing/models/gguf_layout.h"

#include <fmt/format.h>

#include <set>

#include "moxing/core/error.h"

namespace moxing::models {

namespace {

std::vector<GgufLayout>& layouts() {
  static std::vector<GgufLayout> all;
  return all;
}

}  // namespace

void register_gguf_layout(GgufLayout layout) { layouts().push_back(std::move(layout)); }

const GgufLayout& find_gguf_layout(const std::string& architecture, const std::string& where) {
  std::vector<std::string> known;
  for (const GgufLayout& l : layouts()) {
    if (l.architecture == architecture) return l;
    known.push_back(l.architecture);
  }
  fail("{}: general.architecture \"{}\" is not one moxing reads from GGUF (it reads: {})", where,
       architecture, fmt::join(known, ", "));
}

const GgufLayout& find_gguf_writer(const std::string& model_type, const std::string& where) {
  std::vector<std::string> known;
  for (const GgufLayout& l : layouts()) {
    if (!l.model_type.empty() && l.model_type == model_type && l.metadata) return l;
    if (!l.model_type.empty()) known.push_back(l.model_type);
  }
  fail("{}: moxing writes GGUF files of {} models, not of model_type \"{}\"", where,
       fmt::join(known, ", "), model_type);
}

void save_gguf_model(const std::string& path, const Model& model,
                     const tokenizers::Tokenizer& tokenizer, const std::string& name,
                     const std::string& chat_template) {
  const std::string model_type = model.config.value("model_type", "");
  const GgufLayout& layout = find_gguf_writer(model_type, path);
  GgufMetadata meta;
  meta.emplace_back("general.architecture", GgufValue::of_string(layout.architecture));
  if (!name.empty()) meta.emplace_back("general.name", GgufValue::of_string(name));
  for (auto& kv : layout.metadata(model.config)) meta.push_back(std::move(kv));
  for (auto& kv : tokenizers::gguf_metadata(tokenizer, path)) meta.push_back(std::move(kv));
  if (!chat_template.empty()) {
    meta.emplace_back("tokenizer.chat_template", GgufValue::of_string(chat_template));
  }
  // the ids generation starts and stops with: the config's, else the tokenizer's end of text
  std::optional<int32_t> eos = tokenizer.eos_token_id();
  for (const char* key : {"bos_token_id", "eos_token_id"}) {
    int64_t id = -1;
    if (model.config.contains(key) && model.config[key].is_number_integer()) {
      id = model.config[key].get<int64_t>();
    } else if (eos) {
      id = *eos;
    }
    if (id >= 0) {
      meta.emplace_back(std::string("tokenizer.ggml.") + key,
                        GgufValue::of_uint(GgufValueType::U32, static_cast<uint64_t>(id)));
    }
  }
  std::vector<GgufTensorData> tensors;
  std::set<const TensorImpl*> seen;
  for (const auto& [hf_name, t] : model.module->state_dict()) {
    if (!seen.insert(t.impl()).second) continue;  // a tied weight: written once
    std::optional<std::string> g = layout.gguf_name(hf_name);
    if (!g) continue;
    Tensor x = t.detach();
    MOXING_CHECK(x.dtype() != DType::i8,
                 "{}: '{}' is per-channel int8, which GGUF has no layout for (its scales are per "
                 "row); write it as a model folder, or quantize to q8_0 for GGUF",
                 path, hf_name);
    if (!is_quantized(x.dtype()) && x.dtype() != DType::f32) x = x.to(DType::f32);
    if (layout.to_file) x = layout.to_file(hf_name, x, model.config);
    tensors.push_back(gguf_tensor_data(*g, x.contiguous()));
  }
  save_gguf(path, meta, tensors);
}

int64_t gguf_int(const GgufFile& file, const std::string& key, std::optional<int64_t> fallback) {
  const GgufValue* v = file.find(key);
  if (v == nullptr) {
    if (fallback) return *fallback;
    fail("{}: metadata '{}' is missing", file.path, key);
  }
  return v->as_int(key);
}

double gguf_number(const GgufFile& file, const std::string& key, std::optional<double> fallback) {
  const GgufValue* v = file.find(key);
  if (v == nullptr) {
    if (fallback) return *fallback;
    fail("{}: metadata '{}' is missing", file.path, key);
  }
  return v->as_number(key);
}

}  // namespace moxing::models
