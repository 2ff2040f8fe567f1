// `moxing generate` (text from a language model, streamed as it comes; --chat answers a message
// through the model's chat template), `moxing chat` (an interactive conversation) and `moxing
// perplexity` (how well a model predicts a text file).
#include <fmt/format.h>

#include <unistd.h>
#include <algorithm>
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
#include "moxing/tokenizers/chat_template.h"
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
  std::string chat;    // a user message, rendered with the model's chat template
  std::string system;  // an optional system message before it
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

// What one generation produced: the text streamed, the new ids and why it stopped.
struct Reply {
  std::string text;
  std::vector<int32_t> ids;
  std::string stop_reason = "max_new_tokens";
  double seconds = 0;
};

// Generates from ids, streaming the text to stdout when echo, stopping at any of stop_ids, at
// the stop string or after cfg.max_new_tokens.
Reply stream_reply(train::LoadedLM& lm, const std::vector<int32_t>& ids,
                   const models::SamplingConfig& cfg, const std::string& stop, bool echo) {
  Reply r;
  tokenizers::StreamDecoder decoder(*lm.tokenizer);
  StopStream stream(stop, echo);
  auto start = std::chrono::steady_clock::now();
  r.ids = models::generate(*lm.lm, ids, cfg, [&](int32_t id) {
    if (std::find(cfg.stop_token_ids.begin(), cfg.stop_token_ids.end(), id) !=
        cfg.stop_token_ids.end()) {
      r.stop_reason = "eos";
      return false;
    }
    if (!stream.add(decoder.push(id))) {
      r.stop_reason = "stop";
      return false;
    }
    return true;
  });
  if (r.stop_reason != "stop") stream.add(decoder.finish());
  stream.finish();
  r.text = stream.text();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

// The ids that end a reply: the tokenizer's end of text, the model's eos_token_id and, in a chat,
// the template's eos_token (ChatML's <|im_end|>).
std::vector<int32_t> stop_ids(const train::LoadedLM& lm,
                              const tokenizers::ModelChatTemplate* chat) {
  std::vector<int32_t> out;
  auto add = [&](std::optional<int32_t> id) {
    if (id && std::find(out.begin(), out.end(), *id) == out.end()) out.push_back(*id);
  };
  add(lm.tokenizer->eos_token_id());
  const nlohmann::json& c = lm.model.config;
  if (c.contains("eos_token_id") && c["eos_token_id"].is_number_integer()) {
    add(c["eos_token_id"].get<int32_t>());
  }
  if (chat != nullptr && !chat->eos_token.empty()) add(lm.tokenizer->token_to_id(chat->eos_token));
  return out;
}

// The model's chat template, or an error saying the model has none.
tokenizers::ModelChatTemplate chat_template_of(const train::LoadedLM& lm) {
  std::optional<tokenizers::ModelChatTemplate> chat = tokenizers::load_chat_template(lm.dir);
  MOXING_CHECK(chat.has_value(),
               "{} has no chat template (GGUF tokenizer.chat_template, tokenizer_config.json's "
               "chat_template or chat_template.jinja): use --prompt for plain text generation",
               lm.dir);
  return std::move(*chat);
}

std::string checked_text(const std::string& text, const char* what, bool replace_invalid) {
  if (replace_invalid) return tokenizers::replace_invalid_utf8(text);
  tokenizers::check_utf8(text, what);
  return text;
}

int run_generate(const GenerateOptions& o) {
  MOXING_CHECK(o.chat.empty() || o.prompt.empty(),
               "give --prompt (text to continue) or --chat (a message to answer), not both");
  train::LoadedLM lm = train::load_language_model(o.model);
  nn::set_f32_compute(*lm.model.module, o.compute == "f32");
  std::optional<tokenizers::ModelChatTemplate> chat;
  std::string prompt;
  if (!o.chat.empty()) {
    chat = chat_template_of(lm);
    std::vector<tokenizers::ChatMessage> messages;
    if (!o.system.empty()) {
      messages.push_back({"system", checked_text(o.system, "--system", o.replace_invalid)});
    }
    messages.push_back({"user", checked_text(o.chat, "--chat", o.replace_invalid)});
    prompt = chat->chat_template.apply(messages, true, chat->bos_token, chat->eos_token);
  } else {
    prompt = checked_text(o.prompt, "--prompt", o.replace_invalid);
  }
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
  for (int32_t id : stop_ids(lm, chat ? &*chat : nullptr)) cfg.stop_token_ids.push_back(id);
  if (!o.json && !chat) std::cout << prompt << std::flush;
  Reply r = stream_reply(lm, ids, cfg, o.stop, !o.json);
  const double tps = static_cast<double>(r.ids.size()) / std::max(r.seconds, 1e-9);
  if (o.json) {
    nlohmann::json j = {{"model", lm.dir},
                        {"prompt", prompt},
                        {"text", r.text},
                        {"prompt_tokens", ids.size()},
                        {"new_tokens", r.ids.size()},
                        {"ids", r.ids},
                        {"stop_reason", r.stop_reason},
                        {"seconds", r.seconds},
                        {"tokens_per_s", tps}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "\n";
    std::cerr << fmt::format("{} tokens in {:.2f} s ({:.1f} tokens/s), stopped by {}\n",
                             r.ids.size(), r.seconds, tps, r.stop_reason);
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
  cmd->add_option("--chat", o->chat,
                  "A user message to answer: rendered with the model's chat template, only the "
                  "reply is printed");
  cmd->add_option("--system", o->system, "A system message before --chat's");
  return {cmd, [o] { return run_generate(*o); }};
}

MOXING_CLI_COMMAND(add_generate_command);

struct ChatOptions {
  std::string model;
  std::string system;
  models::SamplingConfig sampling;
  std::string compute = "auto";
};

// An interactive conversation on stdin/stdout: each line is a user message; the whole history
// is rendered with the chat template and the reply streamed. /reset forgets the history, /exit
// (or the end of input) ends.
int run_chat(const ChatOptions& o) {
  train::LoadedLM lm = train::load_language_model(o.model);
  nn::set_f32_compute(*lm.model.module, o.compute == "f32");
  tokenizers::ModelChatTemplate chat = chat_template_of(lm);
  models::SamplingConfig cfg = o.sampling;
  for (int32_t id : stop_ids(lm, &chat)) cfg.stop_token_ids.push_back(id);
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  std::vector<tokenizers::ChatMessage> history;
  auto reset = [&] {
    history.clear();
    if (!o.system.empty()) history.push_back({"system", o.system});
  };
  reset();
  if (tty) {
    std::cerr << fmt::format("{}: chat ({} to forget the conversation, {} or Ctrl-D to end)\n",
                             lm.dir, "/reset", "/exit");
  }
  std::string line;
  int turn = 0;
  while (true) {
    if (tty) std::cout << "> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      reset();
      std::cout << "(conversation reset)\n" << std::flush;
      continue;
    }
    if (line.empty()) continue;
    line = tokenizers::replace_invalid_utf8(line);
    history.push_back({"user", line});
    const std::string prompt =
        chat.chat_template.apply(history, true, chat.bos_token, chat.eos_token);
    std::vector<int32_t> ids = lm.tokenizer->encode(prompt);
    const int64_t context = lm.lm->context_length();
    if (context > 0 && static_cast<int64_t>(ids.size()) >= context) {
      std::cout << fmt::format(
                       "(the conversation has {} tokens, the model's context {}: /reset "
                       "to start over)\n",
                       ids.size(), context)
                << std::flush;
      history.pop_back();
      continue;
    }
    models::SamplingConfig turn_cfg = cfg;
    turn_cfg.seed = cfg.seed + static_cast<uint64_t>(turn++);
    Reply r = stream_reply(lm, ids, turn_cfg, "", true);
    std::cout << "\n" << std::flush;
    history.push_back({"assistant", r.text});
  }
  return 0;
}

Command add_chat_command(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  o->sampling.max_new_tokens = 256;
  auto* cmd = app.add_subcommand(
      "chat", "Talk with a chat model (GGUF or folder with a chat template), streamed");
  cmd->add_option("MODEL", o->model, "GGUF file or model folder with a chat template")->required();
  cmd->add_option("--system", o->system, "A system message opening the conversation");
  cmd->add_option("--max-new-tokens", o->sampling.max_new_tokens,
                  "Most tokens per reply (default 256)");
  cmd->add_option("--temperature", o->sampling.temperature, "Divide the logits by T (default 1)");
  cmd->add_option("--top-k", o->sampling.top_k, "Sample among the K likeliest tokens (0: all)");
  cmd->add_option("--top-p", o->sampling.top_p, "Nucleus sampling threshold (default 1)");
  cmd->add_option("--repetition-penalty", o->sampling.repetition_penalty,
                  "Penalize tokens already in the text (1: none)");
  cmd->add_option("--seed", o->sampling.seed, "Seed of the sampling (default 0)");
  cmd->add_flag("--greedy", o->sampling.greedy, "Always take the likeliest token");
  add_compute_option(cmd, o->compute);
  return {cmd, [o] { return run_chat(*o); }};
}

MOXING_CLI_COMMAND(add_chat_command);

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
