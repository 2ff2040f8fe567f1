// The family registry and the one Hugging Face loader: config.json through the family's field
// table, model.safetensors (or its shards) through the family's weight rules, one report of
// what does not match (from load_state_dict).
#include "moxing/models/family.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "moxing/io/checkpoint.h"
#include "moxing/io/gguf.h"
#include "moxing/io/safetensors.h"
#include "moxing/models/gguf_layout.h"
#include "moxing/nn/quantized.h"

namespace moxing::models {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<Family>& registry() {
  static std::vector<Family> families;
  return families;
}

std::string registered_names() {
  std::vector<std::string> names;
  for (const Family* f : families()) {
    std::string n = f->name;
    if (!f->aliases.empty()) n += fmt::format(" (alias {})", fmt::join(f->aliases, ", "));
    names.push_back(n);
  }
  return fmt::format("{}", fmt::join(names, ", "));
}

// Keys of config.json that describe the file, not the family's fields.
const char* kFileKeys[] = {"model_type", "architectures", "dtype", "torch_dtype"};

// "float32" as transformers writes config.json's dtype: torch's name without "torch.".
std::string config_dtype_name(DType t) { return std::string(dtype_torch_name(t)).substr(6); }

// config.json's "dtype" (newer transformers) or "torch_dtype"; f32 when it names none.
DType config_dtype(const json& config, const std::string& where) {
  for (const char* key : {"dtype", "torch_dtype"}) {
    if (!config.contains(key) || config[key].is_null()) continue;
    MOXING_CHECK(config[key].is_string(), "{}: \"{}\" must be a string, got {}", where, key,
                 config[key].dump());
    std::string name = config[key].get<std::string>();
    for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
      if (name == config_dtype_name(t) || name == dtype_torch_name(t)) return t;
    }
    fail(
        "{}: \"{}\": {} is not a floating dtype moxing has (float32, float64, bfloat16, "
        "float16)",
        where, key, name);
  }
  return DType::f32;
}

// The files holding a folder's weights: model.safetensors, or the shards of its index.
std::vector<SafetensorsFile> load_weight_files(const std::string& dir) {
  fs::path single = fs::path(dir) / "model.safetensors";
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::vector<SafetensorsFile> files;
  if (fs::exists(single)) {
    files.push_back(load_safetensors(single.string()));
    return files;
  }
  MOXING_CHECK(fs::exists(index),
               "model directory {} has no model.safetensors (nor a sharded "
               "model.safetensors.index.json)",
               dir);
  json j;
  try {
    j = json::parse(read_text_file(index.string()));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({})", index.string(), e.what());
  }
  MOXING_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
               "{}: no \"weight_map\" object naming each tensor's shard", index.string());
  std::set<std::string> shards;
  for (const auto& [name, file] : j["weight_map"].items()) {
    MOXING_CHECK(file.is_string(), "{}: the shard of {} must be a file name, got {}",
                 index.string(), name, file.dump());
    std::string f = file.get<std::string>();
    MOXING_CHECK(f.find('/') == std::string::npos && f.find("..") == std::string::npos,
                 "{}: shard name {} must be a file in the folder", index.string(), f);
    shards.insert(f);
  }
  MOXING_CHECK(!shards.empty(), "{}: the weight_map is empty", index.string());
  for (const std::string& f : shards) {
    files.push_back(load_safetensors((fs::path(dir) / f).string()));
  }
  return files;
}

// The file's tensors under the model's state_dict names, through the family's rules; tied
// names the file leaves out are filled from the name they share a tensor with.
nn::TensorList map_file_tensors(const std::vector<SafetensorsFile>& files, const Model& model) {
  const WeightRules& rules = model.family->rules;
  nn::TensorList model_state = model.module->state_dict();
  std::set<std::string> model_names;
  for (const auto& [n, t] : model_state) model_names.insert(n);
  nn::TensorList state;
  std::set<std::string> given;
  for (const SafetensorsFile& file : files) {
    for (const auto& [file_name, tensor] : file.tensors) {
      // a suffix the rules ignore is still loaded where the model has that name (Marian's
      // learned position tables share the name of the sinusoidal ones older files hold)
      bool ignored = false;
      for (const auto& s : rules.ignored_suffixes) ignored = ignored || ends_with(file_name, s);
      if (ignored && !model_names.count(file_name)) continue;
      std::string name = file_name;
      if (!model_names.count(name)) {
        for (const auto& prefix : rules.optional_prefixes) {
          if (model_names.count(prefix + file_name)) name = prefix + file_name;
        }
      }
      Tensor t = tensor;
      // a view: no copy (quantized weights are saved in the module's layout already)
      if (rules.is_transposed(name) && t.dim() == 2 && !is_quantized(t.dtype()) &&
          t.dtype() != DType::i8) {
        t = t.t();
      }
      if (given.insert(name).second) state.emplace_back(name, t);
    }
  }
  // tied weights: one tensor registered under several names; the file holds one of them
  std::unordered_map<const TensorImpl*, std::string> first_name;
  std::map<std::string, Tensor> by_name(state.begin(), state.end());
  std::vector<std::vector<std::string>> groups;
  std::unordered_map<const TensorImpl*, size_t> group_of;
  for (const auto& [n, t] : model_state) {
    auto [it, inserted] = group_of.emplace(t.impl(), groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(n);
  }
  for (const auto& names : groups) {
    if (names.size() < 2) continue;
    const Tensor* source = nullptr;
    for (const auto& n : names) {
      auto it = by_name.find(n);
      if (it != by_name.end()) {
        source = &it->second;
        break;
      }
    }
    if (source == nullptr) continue;
    Tensor src = *source;
    for (const auto& n : names) {
      if (!by_name.count(n)) {
        state.emplace_back(n, src);
        by_name[n] = src;
      }
    }
  }
  return state;
}

void load_into(const std::vector<SafetensorsFile>& files, const Model& model, bool allow_missing,
               bool assign, LoadReport* report, const std::string& where) {
  nn::TensorList state = map_file_tensors(files, model);
  try {
    nn::LoadStateDictResult r =
        model.module->load_state_dict(state, {.strict = !allow_missing, .assign = assign});
    if (report != nullptr) {
      report->newly_initialized = r.missing_keys;
      report->unused = r.unexpected_keys;
    }
  } catch (const Error& e) {
    fail("{}: {}", where, e.what());
  }
}

}  // namespace

bool WeightRules::is_transposed(const std::string& name) const {
  for (const auto& s : transposed_suffixes) {
    if (ends_with(name, s)) return true;
  }
  return false;
}

const Architecture& Family::architecture(const std::string& arch) const {
  MOXING_CHECK(!architectures.empty(), "family {} declares no architecture", name);
  if (arch.empty()) return architectures.front();
  std::vector<std::string> names;
  for (const Architecture& a : architectures) {
    if (a.name == arch) return a;
    names.push_back(a.name);
  }
  fail("family {} has no architecture {} (it builds: {})", name, arch, fmt::join(names, ", "));
}

void register_family(Family family) {
  for (const Family& f : registry()) {
    MOXING_CHECK(f.name != family.name, "model family {} is registered twice", family.name);
  }
  registry().push_back(std::move(family));
}

std::vector<const Family*> families() {
  std::vector<const Family*> out;
  for (const Family& f : registry()) out.push_back(&f);
  std::sort(out.begin(), out.end(),
            [](const Family* a, const Family* b) { return a->name < b->name; });
  return out;
}

const Family& find_family(const std::string& name) {
  for (const Family& f : registry()) {
    if (f.name == name) return f;
    for (const auto& a : f.aliases) {
      if (a == name) return f;
    }
  }
  fail("unknown model '{}' (moxing knows: {})", name, registered_names());
}

const Family& family_of_config(const json& config, const std::string& where) {
  if (config.contains("model_type")) {
    const json& t = config["model_type"];
    MOXING_CHECK(t.is_string(), "{}: \"model_type\" must be a string, got {}", where, t.dump());
    std::string type = t.get<std::string>();
    for (const Family* f : families()) {
      if (f->name == type) return *f;
    }
    fail("{}: model_type \"{}\" is not supported (moxing knows: {})", where, type,
         registered_names());
  }
  if (config.contains("architectures") && config["architectures"].is_array()) {
    for (const json& a : config["architectures"]) {
      if (!a.is_string()) continue;
      for (const Family* f : families()) {
        for (const Architecture& arch : f->architectures) {
          if (arch.name == a.get<std::string>()) return *f;
        }
      }
    }
    fail("{}: architectures {} are not supported and there is no model_type (moxing knows: {})",
         where, config["architectures"].dump(), registered_names());
  }
  fail("{}: no \"model_type\" or \"architectures\" naming the model", where);
}

Model build_model(const Family& family, const json& fields, const std::string& architecture,
                  Generator* gen, bool keep_unknown) {
  json own = fields;
  for (const char* k : kFileKeys) own.erase(k);
  Model m;
  m.family = &family;
  m.architecture = family.architecture(architecture).name;
  m.config = family.resolve(own, "config", keep_unknown);
  m.config["model_type"] = family.name;
  m.config["architectures"] = json::array({m.architecture});
  m.module = family.build(m.config, m.architecture, gen);
  return m;
}

json read_config_json(const std::string& dir) {
  MOXING_CHECK(fs::is_directory(dir), "model directory {} does not exist", dir);
  fs::path path = fs::path(dir) / "config.json";
  MOXING_CHECK(fs::exists(path), "model directory {} has no config.json", dir);
  json j;
  try {
    j = json::parse(read_text_file(path.string()));
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", path.string(), e.what());
  }
  MOXING_CHECK(j.is_object(), "{}: not a JSON object", path.string());
  return j;
}

namespace {

// A quantized (rows, K) weight as the u8 (rows, row bytes) tensor a safetensors file stores
// (safetensors has no block types; bitsandbytes stores its 4-bit weights the same way).
Tensor quantized_as_bytes(const Tensor& q) {
  Tensor c = q.contiguous();
  const int64_t rows = c.dim() == 0 ? 1 : c.numel() / c.size(-1);
  const auto row_bytes = static_cast<int64_t>(dtype_nbytes(c.dtype(), c.size(-1)));
  auto owner = c.impl_ptr();
  return from_blob(c.raw_data(), {rows, row_bytes}, DType::u8, owner);
}

// The inverse: a u8 (rows, row bytes) tensor read back as a (rows, K) tensor of type.
Tensor quantized_from_bytes_impl(const Tensor& bytes, DType type, const std::string& what) {
  if (!is_quantized(type)) {  // per-channel int8: an I8 tensor as it is
    MOXING_CHECK(bytes.dtype() == type, "{}: a {} weight is stored as {}, got {}", what,
                 dtype_name(type), dtype_name(type), dtype_name(bytes.dtype()));
    return bytes;
  }
  const auto block_bytes = static_cast<int64_t>(dtype_block_bytes(type));
  MOXING_CHECK(bytes.dtype() == DType::u8 && bytes.dim() == 2 && bytes.size(1) % block_bytes == 0,
               "{}: a {} weight is stored as u8 rows of whole {}-byte blocks, got {} of shape {}",
               what, dtype_name(type), block_bytes, dtype_name(bytes.dtype()),
               shape_str(bytes.shape()));
  Tensor c = bytes.contiguous();
  const int64_t cols = bytes.size(1) / block_bytes * dtype_block_numel(type);
  return from_blob(c.raw_data(), {bytes.size(0), cols}, type, c.impl_ptr());
}

// config.json's quantization_config (as save_pretrained writes it): weight name -> dtype.
std::map<std::string, DType> quantized_weights_impl(const json& config, const std::string& where) {
  std::map<std::string, DType> out;
  if (!config.contains("quantization_config")) return out;
  const json& q = config["quantization_config"];
  MOXING_CHECK(q.is_object() && q.value("quant_method", "") == "moxing" && q.contains("modules") &&
                   q["modules"].is_object(),
               "{}: quantization_config must be {{\"quant_method\": \"moxing\", \"modules\": "
               "{{path: type}}}} (moxing reads its own quantized folders; {} is not one)",
               where, q.is_object() ? q.value("quant_method", "?") : std::string("?"));
  for (const auto& [path, type] : q["modules"].items()) {
    std::optional<DType> t =
        type.is_string() ? dtype_from_name(type.get<std::string>()) : std::nullopt;
    MOXING_CHECK(t && (is_quantized(*t) || *t == DType::i8),
                 "{}: quantization_config gives module {} the type {}, not a quantized dtype "
                 "(q8_0, q4_0, q4_1, q4_k, q6_k, i8)",
                 where, path, type.dump());
    out[path + ".weight"] = *t;
  }
  return out;
}

// Swaps in a quantized layer for each Linear and Embedding whose weight the file holds
// quantized (types: the model's weight name -> its dtype), on meta, before loading. A Linear tied
// to a quantized Embedding (an output head) shares the quantized table.
void swap_in_quantized(nn::Module& root, const std::map<std::string, DType>& types) {
  DeviceGuard meta(kMeta);
  std::vector<std::pair<Tensor, Tensor>> tables;  // (the f32 table, the quantized one)
  root.replace_modules<nn::Embedding>([&](const std::string& path, std::shared_ptr<nn::Embedding> e)
                                          -> std::shared_ptr<nn::Module> {
    auto it = types.find(path + ".weight");
    if (it == types.end()) return nullptr;
    auto q =
        std::make_shared<nn::QuantizedEmbedding>(e->num_embeddings, e->embedding_dim, it->second);
    tables.emplace_back(e->weight, q->weight);
    return q;
  });
  root.replace_modules<nn::Linear>(
      [&](const std::string& path, std::shared_ptr<nn::Linear> l) -> std::shared_ptr<nn::Module> {
        auto it = types.find(path + ".weight");
        for (const auto& [table, quantized] : tables) {
          if (!table.shares_storage(l->weight)) continue;  // a head tied to the table
          auto q = std::make_shared<nn::QuantizedLinear>(l->in_features, l->out_features,
                                                         l->bias.defined(), quantized.dtype());
          q->weight = q->register_parameter("weight", quantized, false);
          return q;
        }
        if (it == types.end()) return nullptr;
        return std::make_shared<nn::QuantizedLinear>(l->in_features, l->out_features,
                                                     l->bias.defined(), it->second);
      });
}

// A GGUF file through its architecture's layout: the config from the metadata, the model built
// on meta, each tensor renamed and loaded strictly. Quantized tensors stay quantized in swapped-in
// layers (or are dequantized to f32 when options.dequantize).
Model from_gguf(const std::string& path, const PretrainedOptions& options, LoadReport* report) {
  GgufFile file = load_gguf(path);
  const GgufValue* arch = file.find("general.architecture");
  MOXING_CHECK(arch != nullptr && arch->type == GgufValueType::STRING,
               "{}: no general.architecture string in the metadata", path);
  const GgufLayout& layout = find_gguf_layout(arch->s, path);
  json config = layout.config(file);
  for (const auto& [k, v] : options.overrides.items()) config[k] = v;
  const Family& family = family_of_config(config, path);
  Model m;
  {
    DeviceGuard meta(kMeta);
    m = build_model(family, config, options.architecture, nullptr, /*keep_unknown=*/true);
  }
  m.module->eval();
  std::map<std::string, DType> quantized;  // model weight name -> its quantized dtype
  if (!options.dequantize) {
    for (const GgufTensor& t : file.tensors) {
      std::optional<std::string> name = layout.name(t.name);
      std::optional<DType> q = quant_dtype_of_ggml(static_cast<uint32_t>(t.type));
      if (name && q && t.dims.size() == 2) quantized[*name] = *q;
    }
    swap_in_quantized(*m.module, quantized);
  }
  if (!options.weights) return m;
  SafetensorsFile named;  // the tensors under their Hugging Face names
  named.path = path;
  for (const GgufTensor& t : file.tensors) {
    std::optional<std::string> name = layout.name(t.name);
    if (!name) continue;  // not a weight of the model (llama.cpp's rope_freqs, say)
    Tensor x = file.view(t.name);
    if (!quantized.contains(*name) && x.dtype() != DType::f32) x = x.to(DType::f32);
    if (layout.transform) x = layout.transform(*name, x, m.config);
    named.tensors.emplace_back(*name, x);
  }
  load_into({named}, m, options.allow_missing, /*assign=*/true, report,
            fmt::format("{} does not match its {} layout", path, arch->s));
  return m;
}

}  // namespace

std::map<std::string, DType> quantized_weights(const json& config, const std::string& where) {
  return quantized_weights_impl(config, where);
}

Tensor quantized_from_bytes(const Tensor& bytes, DType type, const std::string& what) {
  return quantized_from_bytes_impl(bytes, type, what);
}

Model from_pretrained(const std::string& dir, const PretrainedOptions& options,
                      LoadReport* report) {
  std::error_code ec;
  if (has_gguf_extension(dir) && fs::is_regular_file(dir, ec)) {
    return from_gguf(dir, options, report);
  }
  json config = read_config_json(dir);
  std::string config_path = (fs::path(dir) / "config.json").string();
  // the architecture first: a folder of another model fails on that, not on its files
  const Family& family = family_of_config(config, config_path);
  std::string arch = options.architecture;
  if (arch.empty() && config.contains("architectures") && config["architectures"].is_array()) {
    for (const json& a : config["architectures"]) {
      if (!a.is_string()) continue;
      for (const Architecture& known : family.architectures) {
        if (known.name == a.get<std::string>() && arch.empty()) arch = known.name;
      }
    }
  }
  for (const auto& [k, v] : options.overrides.items()) config[k] = v;
  const DType dtype = options.dtype ? *options.dtype : config_dtype(config, config_path);
  Model m;
  try {
    // on meta: shapes only, no memory and no random draws; the weights then take the file's
    // storage. A model that may lack tensors in the file (a new head) is built for real, so
    // that those keep their initialization.
    std::optional<DeviceGuard> meta;
    if (!options.allow_missing || !options.weights) meta.emplace(kMeta);
    m = build_model(family, config, arch, nullptr, /*keep_unknown=*/true);
    if (dtype != DType::f32) m.module->to(dtype);
  } catch (const Error& e) {
    std::string msg = e.what();
    const std::string prefix = "config: ";
    if (msg.compare(0, prefix.size(), prefix) == 0) msg = msg.substr(prefix.size());
    fail("{}: {}", config_path, msg);
  }
  m.module->eval();  // as transformers' from_pretrained: training turns dropout back on
  const std::map<std::string, DType> quantized = quantized_weights_impl(config, config_path);
  if (!quantized.empty()) swap_in_quantized(*m.module, quantized);
  if (!options.weights) return m;
  std::vector<SafetensorsFile> files = load_weight_files(dir);
  for (SafetensorsFile& f : files) {
    for (auto& [name, t] : f.tensors) {
      auto it = quantized.find(name);
      // block types are stored as u8 rows; per-channel int8 is an I8 tensor already
      if (it != quantized.end()) t = quantized_from_bytes_impl(t, it->second, f.path + ": " + name);
    }
  }
  load_into(files, m, options.allow_missing, /*assign=*/true, report,
            fmt::format("{} does not match {}", files.front().path, config_path));
  return m;
}

void load_weights(const std::string& dir, const Model& model) {
  std::vector<SafetensorsFile> files = load_weight_files(dir);
  load_into(files, model, false, /*assign=*/false, nullptr, files.front().path);
}

std::vector<std::pair<std::string, Tensor>> weights_for_saving(const Model& model) {
  std::vector<std::pair<std::string, Tensor>> out;
  std::set<const TensorImpl*> seen;
  for (const auto& [name, t] : model.module->state_dict()) {
    if (!seen.insert(t.impl()).second) continue;  // a tied name: saved once
    if (is_quantized(t.dtype())) {
      out.emplace_back(name, quantized_as_bytes(t));
      continue;
    }
    // per-channel int8 weights stay in the module's (out, in) layout, as the block types do
    bool transposed =
        model.family->rules.is_transposed(name) && t.dim() == 2 && t.dtype() != DType::i8;
    out.emplace_back(name, transposed ? t.t() : t);
  }
  return out;
}

void Model::save_pretrained(const std::string& dir) const {
  fs::create_directories(dir);
  json j = config;
  DType dtype = DType::f32;
  for (const Tensor& p : module->parameters()) {
    if (is_floating(p.dtype())) {
      dtype = p.dtype();
      break;
    }
  }
  j["dtype"] = config_dtype_name(dtype);
  j.erase("torch_dtype");
  j.erase("quantization_config");
  json modules = json::object();
  for (const auto& [path, m] : module->named_modules()) {
    if (auto* l = dynamic_cast<const nn::QuantizedLinear*>(m)) modules[path] = dtype_name(l->type);
    if (auto* e = dynamic_cast<const nn::QuantizedEmbedding*>(m))
      modules[path] = dtype_name(e->type);
  }
  if (!modules.empty())
    j["quantization_config"] = {{"quant_method", "moxing"}, {"modules", modules}};
  std::string config_path = (fs::path(dir) / "config.json").string();
  write_text_file_atomic(config_path, j.dump(2) + "\n");
  save_safetensors((fs::path(dir) / "model.safetensors").string(), weights_for_saving(*this),
                   {{"format", "pt"}});
}

}  // namespace moxing::models
