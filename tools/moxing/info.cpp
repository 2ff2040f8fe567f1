// `moxing info PATH`: what a safetensors file (or every *.safetensors in a folder, such as a
// checkpoint's model.safetensors and optimizer.safetensors) holds: each tensor's name, dtype
// and shape, the parameter and byte totals, and the metadata. Reads headers; computes nothing.
// `moxing info --config CONFIG.toml|DIR`: the parameters of the model a training config (or a
// run, checkpoint or model folder) builds and the memory training it would take, measured on
// the meta device: instant, for models of any size.
#include "command.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "moxing/core/error.h"
#include "moxing/io/gguf.h"
#include "moxing/io/safetensors.h"
#include "moxing/models/family.h"
#include "moxing/train/estimate.h"
#include "moxing/train/trainer.h"

namespace moxing::tools {

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

struct Totals {
  size_t tensors = 0;
  uint64_t parameters = 0;
  uint64_t bytes = 0;
};

uint64_t tensor_bytes(const Tensor& t) { return dtype_nbytes(t.dtype(), t.numel()); }

// "F32", or "q4_k" for a quantized weight (safetensors has no name for those)
const char* dtype_label(const Tensor& t) {
  return is_quantized(t.dtype()) ? dtype_name(t.dtype()) : safetensors_dtype_name(t.dtype());
}

Totals totals_of(const SafetensorsFile& f) {
  Totals t;
  for (const auto& [name, tensor] : f.tensors) {
    t.tensors += 1;
    t.parameters += static_cast<uint64_t>(tensor.numel());
    t.bytes += tensor_bytes(tensor);
  }
  return t;
}

// "1.5 MiB"
std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string totals_line(const Totals& t) {
  return fmt::format("{} tensor{}, {} parameters, {} bytes ({})", t.tensors,
                     t.tensors == 1 ? "" : "s", t.parameters, t.bytes, human_bytes(t.bytes));
}

// The files PATH names: itself, or the *.safetensors in it, sorted.
std::vector<std::string> files_of(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("{}: no such file or folder", path);
  if (!fs::is_directory(path, ec)) return {path};
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path)) {
    if (e.path().extension() == ".safetensors" && e.is_regular_file()) {
      files.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) fail("{}: no .safetensors files in this folder", path);
  return files;
}

void print_text(const std::vector<SafetensorsFile>& files) {
  Totals all;
  for (const SafetensorsFile& f : files) {
    if (&f != &files.front()) std::cout << "\n";
    size_t name_w = 6, dtype_w = 5;
    for (const auto& [name, t] : f.tensors) {
      name_w = std::max(name_w, name.size());
      dtype_w = std::max(dtype_w, std::string(dtype_label(t)).size());
    }
    std::cout << f.path << "\n";
    std::cout << fmt::format("  {:<{}}  {:<{}}  {}\n", "tensor", name_w, "dtype", dtype_w, "shape");
    for (const auto& [name, t] : f.tensors) {
      std::cout << fmt::format("  {:<{}}  {:<{}}  {}\n", name, name_w, dtype_label(t), dtype_w,
                               shape_str(t.shape()));
    }
    Totals t = totals_of(f);
    std::cout << "  " << totals_line(t) << "\n";
    if (t.parameters > 0) {
      std::cout << fmt::format("  {:.2f} bits per weight\n", 8.0 * static_cast<double>(t.bytes) /
                                                                 static_cast<double>(t.parameters));
    }
    if (!f.metadata.empty()) {
      std::cout << "  metadata:\n";
      for (const auto& [key, value] : f.metadata)
        std::cout << "    " << key << ": " << value << "\n";
    }
    all.tensors += t.tensors;
    all.parameters += t.parameters;
    all.bytes += t.bytes;
  }
  if (files.size() > 1) std::cout << "total: " << totals_line(all) << "\n";
}

void print_json(const std::string& path, const std::vector<SafetensorsFile>& files) {
  ojson out;
  out["path"] = path;
  out["files"] = ojson::array();
  Totals all;
  for (const SafetensorsFile& f : files) {
    ojson jf;
    jf["path"] = f.path;
    jf["tensors"] = ojson::array();
    for (const auto& [name, t] : f.tensors) {
      jf["tensors"].push_back({{"name", name},
                               {"dtype", dtype_label(t)},
                               {"shape", t.shape()},
                               {"parameters", t.numel()},
                               {"bytes", tensor_bytes(t)}});
    }
    Totals t = totals_of(f);
    jf["parameters"] = t.parameters;
    jf["bytes"] = t.bytes;
    jf["metadata"] = ojson::object();
    for (const auto& [key, value] : f.metadata) jf["metadata"][key] = value;
    out["files"].push_back(std::move(jf));
    all.tensors += t.tensors;
    all.parameters += t.parameters;
    all.bytes += t.bytes;
  }
  out["tensors"] = all.tensors;
  out["parameters"] = all.parameters;
  out["bytes"] = all.bytes;
  // tensor names and metadata are checked UTF-8 by the loader; replace guards the rest
  std::cout << out.dump(-1, ' ', false, ojson::error_handler_t::replace) << "\n";
}

std::string estimate_line(const char* what, uint64_t bytes, const std::string& detail = "") {
  std::string line = fmt::format("  {:<12}{:>12}", what, human_bytes(bytes));
  return line + (detail.empty() ? "" : "  " + detail) + "\n";
}

int run_config_info(const std::string& path, bool json) {
  try {
    std::error_code ec;
    train::Config config = fs::is_directory(path, ec) ? train::training_config_of(path)
                                                      : train::Config::from_file(path);
    train::MemoryEstimate e = train::estimate_training_memory(config);
    if (json) {
      nlohmann::json j = e.to_json();
      j["config"] = path;
      j["batch_size"] = config.data.batch_size;
      j["optimizer"] = config.optim.name;
      std::cout << j.dump() << "\n";
      return 0;
    }
    std::cout << fmt::format("{}\nmodel       {}\ntask        {}, batch {}, optimizer {}\n", path,
                             e.model, e.task, config.data.batch_size, config.optim.name);
    std::cout << fmt::format("parameters  {} ({:.2f}M), {} trainable\n", e.parameters,
                             static_cast<double>(e.parameters) / 1e6, e.trainable);
    std::cout << "training memory (f32 weights; measured on the meta device):\n";
    std::cout << estimate_line("weights", e.weight_bytes);
    if (e.stepped) {
      std::cout << estimate_line("gradients", e.gradient_bytes);
      std::cout << estimate_line("optimizer", e.optimizer_bytes, config.optim.name + " state");
      std::cout << estimate_line(
          "activations", e.activation_bytes,
          fmt::format("one micro-batch of {}, forward and backward", config.data.batch_size));
      std::cout << estimate_line("peak", e.peak_bytes);
    }
    for (const std::string& n : e.notes) std::cout << "note: " << n << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "moxing info: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

namespace {

// A metadata value in one short line (arrays by their length and first items)
std::string gguf_value_str(const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::STRING:
      return v.s.size() > 60 ? v.s.substr(0, 57) + "..." : v.s;
    case GgufValueType::ARRAY:
      return fmt::format("[{} {} values]", v.items.size(), gguf_value_type_name(v.array_type));
    case GgufValueType::F32:
    case GgufValueType::F64:
      return fmt::format("{}", v.f);
    default:
      return v.is_integer() ? fmt::format("{}", v.as_int("value")) : "?";
  }
}

// A GGUF file: metadata, each tensor's ggml type and shape, and the weights' bits per weight
int run_gguf_info(const std::string& path, bool json) {
  GgufFile f = load_gguf(path);
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;  // weights, bytes
  uint64_t weights = 0, bytes = 0;
  for (const GgufTensor& t : f.tensors) {
    auto& [w, b] = by_type[ggml_type_name(static_cast<uint32_t>(t.type))];
    w += static_cast<uint64_t>(t.numel());
    b += t.nbytes;
    weights += static_cast<uint64_t>(t.numel());
    bytes += t.nbytes;
  }
  const double bpw =
      weights > 0 ? 8.0 * static_cast<double>(bytes) / static_cast<double>(weights) : 0.0;
  if (json) {
    ojson j = {{"path", path},       {"version", f.version}, {"tensors", f.tensors.size()},
               {"weights", weights}, {"bytes", bytes},       {"bits_per_weight", bpw}};
    for (const auto& [type, wb] : by_type) {
      j["types"][type] = {{"weights", wb.first}, {"bytes", wb.second}};
    }
    for (const auto& [key, v] : f.metadata) j["metadata"][key] = gguf_value_str(v);
    for (const GgufTensor& t : f.tensors) {
      j["tensor_list"].push_back({{"name", t.name},
                                  {"type", ggml_type_name(static_cast<uint32_t>(t.type))},
                                  {"shape", t.shape()}});
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format(
      "{}: GGUF version {}, {} tensors, {} weights in {} ({:.2f} bits per "
      "weight)\n",
      path, f.version, f.tensors.size(), weights, human_bytes(bytes), bpw);
  for (const auto& [type, wb] : by_type) {
    std::cout << fmt::format("  {:<6} {:>12} weights  {:>10}  {:.2f} bits per weight\n", type,
                             wb.first, human_bytes(wb.second),
                             8.0 * static_cast<double>(wb.second) /
                                 static_cast<double>(std::max<uint64_t>(wb.first, 1)));
  }
  std::cout << "metadata:\n";
  for (const auto& [key, v] : f.metadata) {
    std::cout << fmt::format("  {} = {}\n", key, gguf_value_str(v));
  }
  std::cout << "tensors:\n";
  for (const GgufTensor& t : f.tensors) {
    std::cout << fmt::format("  {:<40} {:<6} {}\n", t.name,
                             ggml_type_name(static_cast<uint32_t>(t.type)), shape_str(t.shape()));
  }
  return 0;
}

}  // namespace

int run_info(const std::string& path, bool json) {
  try {
    if (has_gguf_extension(path)) {
      return run_gguf_info(path, json);
    }
    std::vector<SafetensorsFile> files;
    for (const std::string& f : files_of(path)) files.push_back(load_safetensors(f));
    // a quantized model folder: its u8 weights shown as the types its config.json names
    std::error_code ec;
    const fs::path config = fs::path(path) / "config.json";
    if (fs::is_directory(path, ec) && fs::exists(config, ec)) {
      const auto types = models::quantized_weights(models::read_config_json(path), config.string());
      for (SafetensorsFile& f : files) {
        for (auto& [name, t] : f.tensors) {
          auto it = types.find(name);
          if (it != types.end())
            t = models::quantized_from_bytes(t, it->second, f.path + ": " + name);
        }
      }
    }
    if (json) {
      print_json(path, files);
    } else {
      print_text(files);
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "moxing info: " << e.what() << "\n";
    return 1;
  }
}

namespace {

Command add_info_command(CLI::App& app) {
  struct Options {
    std::string path, config;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "info",
      "Show the tensors (name, dtype, shape), sizes and metadata of safetensors or GGUF files "
      "(with each type's bits per weight); with --config, the parameters and training memory "
      "of a config's model");
  auto* path = cmd->add_option(
      "PATH", o->path, "A .safetensors or .gguf file, or a folder of safetensors (a checkpoint)");
  auto* config = cmd->add_option("--config", o->config,
                                 "A training config (.toml), or a run, checkpoint or model "
                                 "folder: print its parameter count and training memory");
  path->excludes(config);
  cmd->add_flag("--json", o->json, "Print the summary as one JSON object on stdout");
  return {cmd, [o] {
            if (!o->config.empty()) return run_config_info(o->config, o->json);
            if (o->path.empty()) {
              std::cerr << "moxing info: give a PATH (safetensors file or folder) or --config "
                           "CONFIG.toml|DIR\n";
              return 2;
            }
            return run_info(o->path, o->json);
          }};
}

MOXING_CLI_COMMAND(add_info_command);

}  // namespace

}  // namespace moxing::tools
