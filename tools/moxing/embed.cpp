// `moxing embed DIR --text T | --file F`: sentence vectors of a text encoder folder, as
// sentence-transformers gives them (its pooling, normalization and window).
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "moxing/core/error.h"
#include "moxing/models/sentence.h"
#include "text_input.h"

namespace moxing::tools {

namespace {

struct EmbedOptions {
  std::string model;
  std::vector<std::string> texts;
  std::string file;
  std::string pooling;
  bool normalize = false, no_normalize = false, json = false;
  int64_t batch_size = 32;
};

int run_embed(const EmbedOptions& o) {
  std::vector<std::string> texts = read_input_texts(o.texts, o.file, "embed");
  models::SentenceEncoderOptions so;
  if (!o.pooling.empty()) so.pooling = o.pooling;
  if (o.normalize) so.normalize = true;
  if (o.no_normalize) so.normalize = false;
  so.batch_size = o.batch_size;
  models::SentenceEncoder s = models::SentenceEncoder::load(o.model, so);
  Tensor v = s.embed(texts);
  const int64_t n = v.size(0), c = v.size(1);
  std::vector<float> x = v.to_vector<float>();
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> row(x.begin() + i * c, x.begin() + (i + 1) * c);
    if (o.json) {
      std::cout
          << nlohmann::json({{"text", texts[static_cast<size_t>(i)]}, {"embedding", row}}).dump()
          << "\n";
    } else {
      std::cout << fmt::format("{:.6f}", fmt::join(row, " ")) << "\n";
    }
  }
  std::cerr << fmt::format("{} texts, {} dimensions, {} pooling{}, window {} tokens\n", n, c,
                           s.pooling, s.normalize ? ", normalized" : "", s.max_seq_length);
  return 0;
}

Command add_embed_command(CLI::App& app) {
  auto o = std::make_shared<EmbedOptions>();
  auto* cmd = app.add_subcommand(
      "embed",
      "Sentence vectors of a text encoder folder (sentence-transformers folders honoured)");
  cmd->add_option("MODEL", o->model, "Model folder (BERT, sentence-transformers)")->required();
  cmd->add_option("--text", o->texts, "A text to embed (may be repeated)");
  cmd->add_option("--file", o->file, "UTF-8 file, one text a line");
  cmd->add_option("--pooling", o->pooling, "mean, cls or max (default: the folder's)")
      ->check(CLI::IsMember({"mean", "cls", "max"}));
  auto* norm = cmd->add_flag("--normalize", o->normalize, "Unit-length vectors");
  cmd->add_flag("--no-normalize", o->no_normalize, "Vectors as pooled")->excludes(norm);
  cmd->add_option("--batch-size", o->batch_size, "Texts per forward (default 32)");
  cmd->add_flag("--json", o->json, "One JSON object a line: {text, embedding}");
  return {cmd, [o] { return run_embed(*o); }};
}

MOXING_CLI_COMMAND(add_embed_command);

}  // namespace

}  // namespace moxing::tools
