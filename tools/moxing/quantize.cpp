// `moxing quantize IN --out OUT --type q8_0|q4_0|q4_1|q4_k`: a model (folder, run folder or
// GGUF file) with its Linear weights quantized, written as a model folder that every command
// loads (config.json gains a quantization_config naming each layer's type), or, when OUT ends in
// .gguf, as a GGUF file llama.cpp loads (Llama and GPT-2 models).
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "command.h"
#include "moxing/core/error.h"
#include "moxing/io/checkpoint.h"
#include "moxing/io/gguf.h"
#include "moxing/models/gguf_layout.h"
#include "moxing/nn/quantized.h"
#include "moxing/tokenizers/chat_template.h"
#include "moxing/tokenizers/tokenizer.h"
#include "moxing/train/task.h"
#include "moxing/train/trainer.h"

namespace moxing::tools {

namespace {

namespace fs = std::filesystem;

struct QuantizeCliOptions {
  std::string in;
  std::string out;
  std::string type = "q8_0";
  std::string embeddings = "q8_0";
  std::string fallback = "q8_0";
  bool force = false;
};

// bytes of the weights of a module tree: quantized ones at their block size
uint64_t weight_bytes(const nn::Module& m) {
  uint64_t n = 0;
  for (const Tensor& p : m.parameters()) n += dtype_nbytes(p.dtype(), p.numel());
  return n;
}

int run_quantize(const QuantizeCliOptions& o) {
  // f32: no quantization (a model written as GGUF, or a quantized one dequantized)
  const DType type = o.type == "f32" ? DType::f32 : nn::quantize_type_from_name(o.type, "--type");
  const DType fallback = nn::quantize_type_from_name(o.fallback, "--fallback");
  const DType embeddings = o.embeddings == "f32"
                               ? DType::f32
                               : nn::quantize_type_from_name(o.embeddings, "--embeddings");
  MOXING_CHECK(o.force || !fs::exists(o.out),
               "--out {} exists; pick another name or pass --force to overwrite it", o.out);
  train::LoadedRun run = train::load_run(o.in);
  nn::Module& root = *run.model.module;
  const int dequantized = nn::dequantize_modules(root);  // a GGUF file's layers, say
  const uint64_t before = weight_bytes(root);
  nn::QuantizeReport report;
  if (type != DType::f32) {
    nn::QuantizeOptions q;
    q.type = type;
    q.fallback = fallback;
    if (embeddings == DType::f32) {
      q.embedding_type.reset();
    } else {
      q.embedding_type = embeddings;
    }
    report = nn::quantize_modules(root, q);
  }
  std::map<std::string, int> counts;
  for (const auto& [path, t] : report) counts[dtype_name(t)] += 1;
  std::unique_ptr<tokenizers::Tokenizer> tok = tokenizers::load_tokenizer(run.checkpoint_dir);
  // the chat template travels with the model
  std::optional<tokenizers::ModelChatTemplate> chat =
      tokenizers::load_chat_template(run.checkpoint_dir);
  if (has_gguf_extension(o.out)) {
    models::save_gguf_model(o.out, run.model, *tok, fs::path(o.out).stem().string(),
                            chat ? chat->chat_template.source() : "");
  } else {
    run.model.save_pretrained(o.out);
    tok->save(o.out);
    if (chat) {
      nlohmann::json config = {{"chat_template", chat->chat_template.source()},
                               {"bos_token", chat->bos_token},
                               {"eos_token", chat->eos_token}};
      write_text_file_atomic((fs::path(o.out) / "tokenizer_config.json").string(),
                             config.dump(2) + "\n");
    }
  }
  const uint64_t after = weight_bytes(root);
  if (dequantized > 0) {
    std::cout << fmt::format("{}: {} quantized layers dequantized to f32 first\n", o.in,
                             dequantized);
  }
  for (const auto& [name, n] : counts) std::cout << fmt::format("{:>5} layers {}\n", n, name);
  std::cout << fmt::format(
      "weights {:.1f} MiB -> {:.1f} MiB ({:.2f} bits per weight)\nwrote {}\n",
      static_cast<double>(before) / (1 << 20), static_cast<double>(after) / (1 << 20),
      8.0 * static_cast<double>(after) /
          std::max<double>(1.0, static_cast<double>(run.model.module->num_parameters())),
      o.out);
  return 0;
}

Command add_quantize_command(CLI::App& app) {
  auto o = std::make_shared<QuantizeCliOptions>();
  auto* cmd = app.add_subcommand(
      "quantize",
      "Quantize a model's weights (q8_0, q4_0, q4_1, q4_k, int8) into a model folder or GGUF file");
  cmd->add_option("IN", o->in, "Model folder, `moxing train` run folder or GGUF file")->required();
  cmd->add_option("--out", o->out, "The model folder to write, or a .gguf file")->required();
  cmd->add_option("--type", o->type,
                  "Type of the Linear weights: q8_0 (8.5 bits per weight), q4_0 (4.5), q4_1 (5), "
                  "q4_k (4.5; rows must be multiples of 256 inputs), int8 (per-channel: an i8 "
                  "weight and an f32 scale per row; model folders only), or f32 (none: a model "
                  "written as GGUF)");
  cmd->add_option("--embeddings", o->embeddings,
                  "Type of embedding tables and a tied output head: q8_0 (default) or f32, or "
                  "any --type");
  cmd->add_option("--fallback", o->fallback,
                  "Type of a weight whose rows do not divide into --type's blocks (default q8_0)");
  cmd->add_flag("--force", o->force, "Overwrite --out if it exists");
  return {cmd, [o] { return run_quantize(*o); }};
}

MOXING_CLI_COMMAND(add_quantize_command);

}  // namespace

}  // namespace moxing::tools
