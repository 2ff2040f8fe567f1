// `moxing translate DIR --text T | --file F [--beam N] [--max-length L] [--json]`: translations
// of texts by a trained (or downloaded) encoder-decoder model, with the tokenizer saved beside it.
#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "moxing/train/tasks/translate.h"
#include "text_input.h"

namespace moxing::tools {

namespace {

struct TranslateOptions {
  std::string model;
  std::vector<std::string> texts;
  std::string file;
  models::Seq2SeqDecoding decoding;
  bool no_cache = false;
  bool json = false;
};

int run_translate(const TranslateOptions& o) {
  std::vector<std::string> texts = read_input_texts(o.texts, o.file, "translate");
  train::LoadedTranslator t = train::load_translator(o.model);
  models::Seq2SeqDecoding d = o.decoding;
  d.use_cache = !o.no_cache;
  auto start = std::chrono::steady_clock::now();
  std::vector<std::string> out = train::translate_texts(t, texts, d);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.json) {
    nlohmann::json all = nlohmann::json::array();
    for (size_t i = 0; i < texts.size(); ++i)
      all.push_back({{"text", texts[i]}, {"translation", out[i]}});
    std::cout << all.dump(2) << "\n";
  } else {
    for (const std::string& s : out) std::cout << s << "\n";
    std::cerr << fmt::format("{} texts in {:.2f} s (beam {})\n", texts.size(), secs, d.num_beams);
  }
  return 0;
}

Command add_translate_command(CLI::App& app) {
  auto o = std::make_shared<TranslateOptions>();
  o->decoding.num_beams = 4;
  auto* cmd = app.add_subcommand(
      "translate",
      "Translate texts with an encoder-decoder model (a run folder or a model folder)");
  cmd->add_option("MODEL", o->model, "A run, checkpoint or model folder with its tokenizer")
      ->required();
  cmd->add_option("--text", o->texts, "A text to translate (may be repeated)");
  cmd->add_option("--file", o->file, "UTF-8 file, one text a line");
  cmd->add_option("--beam", o->decoding.num_beams, "Beams of the search (default 4; 1: greedy)");
  cmd->add_option("--length-penalty", o->decoding.length_penalty,
                  "Score finished beams by log-probability / length^P (default 1)");
  cmd->add_option("--max-length", o->decoding.max_new_tokens,
                  "Most tokens per translation (default 128, at most the model's positions)");
  cmd->add_flag("--no-cache", o->no_cache,
                "Recompute the decoder over the whole prefix at each step (slow; for checking)");
  cmd->add_flag("--json", o->json, "Print [{text, translation}] as JSON on stdout");
  return {cmd, [o] { return run_translate(*o); }};
}

MOXING_CLI_COMMAND(add_translate_command);

}  // namespace

}  // namespace moxing::tools
