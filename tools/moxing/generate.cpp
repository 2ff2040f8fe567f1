// `moxing generate` (text from a language model, streamed as it comes) and `moxing perplexity`
// (how well a model predicts a text file).
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "moxing/core/error.h"
#include "moxing/io/checkpoint.h"
#include "moxing/models/generation.h"
#include "moxing/models/gpt.h"
#include "moxing/nn/quantized.h"
#include "moxing/tokenizers/utf8.h"
#include "moxing/train/tasks/causal_lm.h"

namespace moxing::tools {

namespace {

struct GenerateOptions {
  std::string model;
  std::string prompt;
  models::SamplingConfig sampling;
  std::string stop;
  bool json = false;
  bool no_cache = false;
  bool replace_invalid = false;
  std::string compute = "auto";
};

// --compute f32: quantized layers multiply with their dequantized weights in f32 (the exactness
// check against a dequantized reference) instead of in 8-bit integers.
void add_compute_option(CLI::App* cmd, std::string& compute) {
  cmd->add_option("--compute", compute,
                  "auto: quantized weights multiply in 8-bit integers; f32: with the dequantized "
                  "weights in f32 (exact, slower)")
      ->check(CLI::IsMember({"auto", "f32"}));
}

// Prints generated text as it comes, holding back what could be the start of the stop string.
class StopStream {
 public:
  StopStream(std::string stop, bool echo) : stop_(std::move(stop)), echo_(echo) {}

  // Adds text; false once the stop string has appeared (the text before it is kept).
  bool add(const std::string& piece) {
    pending_ += piece;
    if (!stop_.empty()) {
      size_t at = pending_.find(stop_);
      if (at != std::string::npos) {
        emit(pending_.substr(0, at));
        pending_.clear();
        return false;
      }
    }
    size_t keep = stop_.empty() ? 0 : std::min(pending_.size(), stop_.size() - 1);
    size_t cut = pending_.size() - keep;
    while (cut > 0 && cut < pending_.size() &&
           (static_cast<uint8_t>(pending_[cut]) & 0xC0) == 0x80) {
      --cut;  // never split a UTF-8 character
    }
    emit(pending_.substr(0, cut));
    pending_.erase(0, cut);
    return true;
  }
  void finish() {
    emit(pending_);
    pending_.clear();
  }
  const std::string& text() const { return text_; }

 private:
  void emit(const std::string& s) {
    if (s.empty()) return;
    text_ += s;
    if (echo_) std::cout << s << std::flush;
  }

  std::string stop_;
  bool echo_;
  std::string pending_;
  std::string text_;
};

int run_generate(const GenerateOptions& o) {
  std::string prompt = o.prompt;
  if (o.replace_invalid) {
    prompt = tokenizers::replace_invalid_utf8(prompt);
  } else {
    tokenizers::check_utf8(prompt, "--prompt");
  }
  train::LoadedLM lm = train::load_language_model(o.model);
  nn::set_f32_compute(*lm.model.module, o.compute == "f32");
  std::vector<int32_t> ids = lm.tokenizer->encode(prompt);
  auto eos = lm.tokenizer->eos_token_id();
  if (ids.empty()) {
    MOXING_CHECK(eos.has_value(),
                 "the prompt is empty and the tokenizer has no end-of-text token to start from; "
                 "give a --prompt");
    ids.push_back(*eos);  // a document starts after the end-of-text token
  }
  models::SamplingConfig cfg = o.sampling;
  cfg.use_cache = !o.no_cache;
  if (eos) cfg.stop_token_ids.push_back(*eos);

  tokenizers::StreamDecoder decoder(*lm.tokenizer);
  StopStream stream(o.stop, !o.json);
  if (!o.json) std::cout << prompt << std::flush;
  std::string stop_reason = "max_new_tokens";
  auto start = std::chrono::steady_clock::now();
  std::vector<int32_t> out = models::generate(*lm.lm, ids, cfg, [&](int32_t id) {
    if (eos && id == *eos) {
      stop_reason = "eos";
      return false;
    }
    if (!stream.add(decoder.push(id))) {
      stop_reason = "stop";
      return false;
    }
    return true;
  });
  if (stop_reason != "stop") stream.add(decoder.finish());
  stream.finish();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.json) {
    nlohmann::json j = {{"model", lm.dir},
                        {"prompt", prompt},
                        {"text", stream.text()},
                        {"prompt_tokens", ids.size()},
                        {"new_tokens", out.size()},
                        {"ids", out},
                        {"stop_reason", stop_reason},
                        {"seconds", secs},
                        {"tokens_per_s", static_cast<double>(out.size()) / std::max(secs, 1e-9)}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "\n";
    std::cerr << fmt::format("{} tokens in {:.2f} s ({:.1f} tokens/s), stopped by {}\n", out.size(),
                             secs, static_cast<double>(out.size()) / std::max(secs, 1e-9),
                             stop_reason);
  }
  return 0;
}

Command add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand(
      "generate", "Generate text with a language model (a model folder or a run folder)");
  cmd->add_option("MODEL", o->model,
                  "Model folder (config.json, model.safetensors, tokenizer) "
                  "or a `moxing train` run folder")
      ->required();
  cmd->add_option("--prompt", o->prompt, "Text to continue (default: start a new document)");
  cmd->add_option("--max-new-tokens", o->sampling.max_new_tokens,
                  "Most tokens to generate (default 64)");
  cmd->add_option("--temperature", o->sampling.temperature,
                  "Divide the logits by T before sampling (default 1)");
  cmd->add_option("--top-k", o->sampling.top_k, "Sample among the K likeliest tokens (0: all)");
  cmd->add_option("--top-p", o->sampling.top_p,
                  "Sample among the likeliest tokens whose probabilities add up to P (default 1)");
  cmd->add_option("--repetition-penalty", o->sampling.repetition_penalty,
                  "Penalize tokens already in the text (1: none; 1.2 is common)");
  cmd->add_option("--stop", o->stop, "Stop when the generated text contains this string");
  cmd->add_option("--seed", o->sampling.seed, "Seed of the sampling (default 0)");
  cmd->add_flag("--greedy", o->sampling.greedy, "Always take the likeliest token");
  cmd->add_flag("--no-cache", o->no_cache,
                "Recompute the whole context for each token (slow; for checking the KV cache)");
  cmd->add_flag("--replace-invalid", o->replace_invalid,
                "Replace invalid UTF-8 in the prompt by U+FFFD instead of failing");
  cmd->add_flag("--json", o->json, "Print one JSON object with the text and timings");
  add_compute_option(cmd, o->compute);
  return {cmd, [o] { return run_generate(*o); }};
}

MOXING_CLI_COMMAND(add_generate_command);

struct PerplexityOptions {
  std::string model;
  std::string file;
  int64_t stride = 0;
  bool json = false;
  std::string compute = "auto";
};

int run_perplexity(const PerplexityOptions& o) {
  train::LoadedLM lm = train::load_language_model(o.model);
  nn::set_f32_compute(*lm.model.module, o.compute == "f32");
  std::string text = read_text_file(o.file);
  tokenizers::check_utf8(text, o.file);
  std::vector<int32_t> ids = lm.tokenizer->encode(text);
  models::PerplexityResult r = models::perplexity(*lm.lm, ids, o.stride);
  if (o.json) {
    nlohmann::json j = {{"model", lm.dir},
                        {"file", o.file},
                        {"tokens", r.tokens},
                        {"loss", r.loss},
                        {"perplexity", r.perplexity}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << fmt::format("tokens {}\nloss {:.4f}\nperplexity {:.3f}\n", r.tokens, r.loss,
                             r.perplexity);
  }
  return 0;
}

Command add_perplexity_command(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  auto* cmd = app.add_subcommand(
      "perplexity", "Mean next-token loss and perplexity of a language model on a text file");
  cmd->add_option("MODEL", o->model, "Model folder or a `moxing train` run folder")->required();
  cmd->add_option("FILE", o->file, "UTF-8 text file")->required();
  cmd->add_option("--stride", o->stride,
                  "Slide the context window by S tokens (default: the context length)");
  cmd->add_flag("--json", o->json, "Print {tokens, loss, perplexity} as JSON");
  add_compute_option(cmd, o->compute);
  return {cmd, [o] { return run_perplexity(*o); }};
}

MOXING_CLI_COMMAND(add_perplexity_command);

}  // namespace

}  // namespace moxing::tools
