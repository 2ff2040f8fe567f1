// Model families: a family (mlp, cnn, gpt2, ...) is one file under src/models that registers
// itself with MOXING_REGISTER_FAMILY: its name (Hugging Face's model_type where one exists)
// and aliases, its config as a declared field table, the architectures it builds and the task
// each serves, and its weight-name rules. Training, loading and the CLI look families up here;
// none of them names one. Also the one Hugging Face loader (from_pretrained/save_pretrained)
// that every family goes through.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/models/config_fields.h"
#include "moxing/nn/module.h"

namespace moxing::models {

/// How a family's tensors are named and laid out in model.safetensors where that differs from
/// its modules' state_dict (candle's VarBuilder renames, kept in one place per family).
struct WeightRules {
  /// state_dict names ending in one of these are stored transposed in files: GPT-2's Conv1D
  /// keeps linear weights as (in, out). Loading takes the stored tensor as a transposed view
  /// (no copy); saving writes it back as (in, out).
  std::vector<std::string> transposed_suffixes;
  /// A prefix the model's names have that some files leave out (GPT2Model checkpoints name the
  /// body's tensors without "transformer.").
  std::vector<std::string> optional_prefixes;
  /// File tensors ending in one of these are not weights and are skipped (old causal masks),
  /// unless the model has a tensor of that very name.
  std::vector<std::string> ignored_suffixes;

  bool is_transposed(const std::string& name) const;
};

/// One architecture a family builds (transformers' `architectures` entry) and the task that
/// trains it ("image-classification", "causal-lm", ...).
struct Architecture {
  std::string name;
  std::string task;
};

/// A registered model family. Configs travel as JSON objects holding every field of the
/// family's table (plus, from config.json, keys the family does not use, kept as they were).
struct Family {
  std::string name;                         ///< model_type, e.g. "gpt2"
  std::vector<std::string> aliases;         ///< other names a TOML [model] name may use ("gpt")
  std::vector<Architecture> architectures;  ///< [0] is the default
  /// Keys the task fills from the data (vocab_size, num_labels, ...): not set in TOML.
  std::vector<std::string> data_keys;
  /// TOML shorthands: one key that sets several fields (GPT-2's "dropout" sets the three
  /// *_pdrop fields).
  std::vector<std::pair<std::string, std::vector<std::string>>> shorthands;
  WeightRules rules;
  /// The field table's keys, in order.
  std::function<std::vector<std::string>()> keys;
  /// Checks types and values and fills defaults; where names the source in errors. Unknown keys
  /// are kept (config.json) when keep_unknown, else an error listing the valid keys.
  std::function<nlohmann::json(const nlohmann::json& fields, const std::string& where,
                               bool keep_unknown)>
      resolve;
  /// Builds the architecture for a resolved config; weights are drawn from gen (the default
  /// generator when null). Dropout layers draw from the default generator, which training
  /// checkpoints save.
  std::function<std::shared_ptr<nn::Module>(const nlohmann::json& config,
                                            const std::string& architecture, Generator* gen)>
      build;
  /// One line for the user: "GPT-2 with 4 layers, 4 heads, width 256, context 128".
  std::function<std::string(const nlohmann::json& config)> describe;

  /// The architecture called name, or the default one when name is empty (error listing the
  /// family's architectures otherwise).
  const Architecture& architecture(const std::string& name = "") const;
};

/// Registers a family (at static-initialization time, through MOXING_REGISTER_FAMILY).
void register_family(Family family);
/// Every registered family, sorted by name.
std::vector<const Family*> families();
/// The family called name (or one of its aliases); the error lists every registered name.
const Family& find_family(const std::string& name);
/// The family of a config.json object: its model_type, else the family building its first
/// architecture; the error names what was found and what moxing knows.
const Family& family_of_config(const nlohmann::json& config, const std::string& where);

/// Makes a Family from a typed config C (visit(f) over its fields, validate() throwing
/// moxing::Error) and a typed build function.
template <class C>
Family make_family(
    std::string name, std::vector<std::string> aliases, std::vector<Architecture> architectures,
    std::function<std::shared_ptr<nn::Module>(const C&, const std::string&, Generator*)> build,
    std::function<std::string(const C&)> describe) {
  Family f;
  f.name = std::move(name);
  f.aliases = std::move(aliases);
  f.architectures = std::move(architectures);
  f.keys = [] { return config_keys<C>(); };
  f.resolve = [](const nlohmann::json& fields, const std::string& where, bool keep_unknown) {
    nlohmann::json unknown = nlohmann::json::object();
    C c = config_from_json<C>(fields, where, keep_unknown ? &unknown : nullptr);
    c.validate();
    nlohmann::json out = config_to_json(c);
    for (const auto& [k, v] : unknown.items()) out[k] = v;
    return out;
  };
  // a resolved config also holds model_type, architectures and kept keys: read past them
  f.build = [build](const nlohmann::json& config, const std::string& arch, Generator* gen) {
    nlohmann::json rest;
    return build(config_from_json<C>(config, "config", &rest), arch, gen);
  };
  f.describe = [describe](const nlohmann::json& config) {
    nlohmann::json rest;
    return describe(config_from_json<C>(config, "config", &rest));
  };
  return f;
}

struct FamilyRegistrar {
  explicit FamilyRegistrar(Family (*make)()) { register_family(make()); }
};

// ---- models as a family built them

/// A model with what the loader and the tasks need besides its module: its family, the
/// architecture and its config.json content.
struct Model {
  const Family* family = nullptr;
  std::string architecture;
  /// The config.json object: model_type, architectures, every field, kept unknown keys.
  nlohmann::json config;
  std::shared_ptr<nn::Module> module;

  /// The module as interface I (a task's contract, e.g. CausalLM), or null.
  template <class I>
  I* as() const {
    return dynamic_cast<I*>(module.get());
  }
  /// The module as I; the error names the family, the architecture and what was needed.
  template <class I>
  I& expect(const std::string& what) const {
    I* p = as<I>();
    MOXING_CHECK(p != nullptr, "{} ({}) is not {}", family ? family->name : "model", architecture,
                 what);
    return *p;
  }
  /// config.json (with "dtype") and model.safetensors in the family's file layout, each
  /// written to a temporary file and renamed into place; other files in dir are kept.
  void save_pretrained(const std::string& dir) const;
};

/// Builds a model from config fields (a TOML [model] section or a config.json object; unknown
/// keys are kept when keep_unknown) for the family, with the architecture asked for (empty: the
/// family's default). Weights drawn from gen (default generator when null).
Model build_model(const Family& family, const nlohmann::json& fields,
                  const std::string& architecture = "", Generator* gen = nullptr,
                  bool keep_unknown = false);

/// What from_pretrained does besides reading the folder.
struct PretrainedOptions {
  /// Architecture to build (empty: config.json's first, else the family's default).
  std::string architecture;
  /// Tensors of the model absent from the file are allowed and keep their fresh initialization
  /// (a new head); they are listed in LoadReport::newly_initialized.
  bool allow_missing = false;
  /// Config fields replacing the folder's (e.g. num_labels for a new head).
  nlohmann::json overrides = nlohmann::json::object();
  /// The weights' dtype; unset: config.json's "dtype" (or "torch_dtype"), f32 when it has none.
  /// A file tensor of another dtype is an error: conversions happen only when asked.
  std::optional<DType> dtype;
  /// false: the model is built from config.json alone on the meta device (shapes and dtypes; no
  /// memory, no weight file read), as memory estimates and `moxing info` need.
  bool weights = true;
  /// GGUF files: quantized tensors (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) stay quantized, in
  /// nn::QuantizedLinear / nn::QuantizedEmbedding layers swapped in for the family's Linear and
  /// Embedding layers, reading the mapped file; true dequantizes them to f32 (a model to train).
  bool dequantize = false;
};

/// config.json's quantization_config, as save_pretrained writes it for a model with quantized
/// layers: {"quant_method": "moxing", "modules": {path: "q4_k"}}, as weight name -> dtype
/// ("model.layers.0.mlp.down_proj.weight" -> q4_k); empty when the config has none.
std::map<std::string, DType> quantized_weights(const nlohmann::json& config,
                                               const std::string& where);
/// A quantized weight as model.safetensors stores it (u8, one row of whole blocks per weight
/// row: (rows, row bytes)) read back as the (rows, K) tensor of type; what names it in errors.
/// A per-channel int8 weight (type i8) is stored as it is and comes back unchanged.
Tensor quantized_from_bytes(const Tensor& bytes, DType type, const std::string& what);

/// What from_pretrained found besides the weights it loaded.
struct LoadReport {
  std::vector<std::string> newly_initialized;  ///< model tensors absent from the file
  std::vector<std::string> unused;             ///< file tensors the model has no place for
};

/// Loads a model folder: config.json (family by model_type or architectures; the field table
/// checks it, unknown keys are kept), then model.safetensors or the shards a
/// model.safetensors.index.json lists, through the family's weight rules. The model is built on
/// the meta device (no memory, no random draws) and its weights take the memory-mapped file's
/// storage: no copy where the file's alignment allows (transposed weights are views). Missing,
/// unexpected, mis-shaped and wrong-dtype tensors are reported in one error (unless options
/// allow missing ones). The model is in eval mode, as transformers returns it.
Model from_pretrained(const std::string& dir, const PretrainedOptions& options = {},
                      LoadReport* report = nullptr);

/// Loads model.safetensors (or its shards) of dir into an existing model through its family's
/// weight rules, strictly: what a checkpoint resume does.
void load_weights(const std::string& dir, const Model& model);

/// The model's tensors as its family stores them in files: transposed names transposed back,
/// each tied tensor once (under its first name).
std::vector<std::pair<std::string, Tensor>> weights_for_saving(const Model& model);

/// The config.json object of a model folder, checked to be a JSON object.
nlohmann::json read_config_json(const std::string& dir);

}  // namespace moxing::models

/// MOXING_REGISTER_FAMILY(make_gpt2_family) at namespace scope in src/models/<family>.cpp, where
/// make_gpt2_family() returns the Family.
#define MOXING_REGISTER_FAMILY(make) \
  static const ::moxing::models::FamilyRegistrar moxing_family_##make { make }
