// `moxing fill-mask DIR --text "... [MASK] ..." [--top K] [--json]`: the likeliest tokens for
// each [MASK] of a text, from a model with a masked-LM head (transformers' fill-mask
// pipeline: score, token, token_str and the filled-in sequence).
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "command.h"
#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/ops/softmax.h"
#include "moxing/train/text_data.h"
#include "moxing/train/trainer.h"
#include "text_input.h"

namespace moxing::tools {

namespace {

struct FillMaskOptions {
  std::string model;
  std::vector<std::string> texts;
  std::string file;
  int64_t top_k = 5;
  bool json = false;
};

int run_fill_mask(const FillMaskOptions& o) {
  std::vector<std::string> texts = read_input_texts(o.texts, o.file, "fill-mask");
  train::LoadedRun run = train::load_run(o.model);
  auto* mlm = run.model.as<models::MaskedLM>();
  MOXING_CHECK(mlm != nullptr,
               "{} holds a {} model ({}) without a masked-LM head; fill-mask needs one (e.g. "
               "BertForMaskedLM, or a run of the masked-lm task)",
               run.checkpoint_dir, run.model.family->name, run.model.architecture);
  auto tokenizer = tokenizers::load_tokenizer(run.checkpoint_dir);
  auto mask = tokenizer->token_to_id("[MASK]");
  MOXING_CHECK(mask.has_value(), "{}: the tokenizer has no [MASK] token", run.checkpoint_dir);
  std::optional<int32_t> pad = tokenizer->token_to_id("[PAD]");
  if (!pad) pad = tokenizer->token_to_id("<pad>");
  int64_t window = 512;
  if (auto* enc = run.model.as<models::TextEncoder>()) window = enc->max_positions();
  NoGradGuard no_grad;
  nlohmann::json all = nlohmann::json::array();
  for (const std::string& text : texts) {
    bool cut = false;
    tokenizers::Encoding e = train::encode_text(*tokenizer, text, std::nullopt, window, &cut);
    if (cut) std::cerr << fmt::format("note: the text was cut to {} tokens\n", window);
    std::vector<size_t> where;
    for (size_t i = 0; i < e.ids.size(); ++i) {
      if (e.ids[i] == *mask) where.push_back(i);
    }
    MOXING_CHECK(!where.empty(), "fill-mask: the text has no [MASK] token: {}", text);
    std::vector<tokenizers::Encoding> one = {e};
    Tensor logits = mlm->mlm_logits(train::pad_batch(one, 0)).to(DType::f32);  // (1,T,V)
    Tensor probs = softmax(logits, 2).contiguous();
    const int64_t V = probs.size(2);
    const float* p = probs.data<float>();
    const int64_t k = std::clamp<int64_t>(o.top_k, 1, V);
    nlohmann::json masks = nlohmann::json::array();
    if (!o.json) std::cout << text << "\n";
    for (size_t m = 0; m < where.size(); ++m) {
      const float* row = p + static_cast<int64_t>(where[m]) * V;
      std::vector<int32_t> order(static_cast<size_t>(V));
      for (int64_t v = 0; v < V; ++v) order[static_cast<size_t>(v)] = static_cast<int32_t>(v);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](int32_t a, int32_t b) { return row[a] > row[b]; });
      nlohmann::json top = nlohmann::json::array();
      if (!o.json && where.size() > 1) std::cout << fmt::format("  [MASK] {}\n", m + 1);
      for (int64_t j = 0; j < k; ++j) {
        const int32_t id = order[static_cast<size_t>(j)];
        // as transformers: padding dropped; with one [MASK] the special tokens are skipped,
        // with several all are kept ([CLS] ... [SEP]), so the other [MASK]s show
        std::vector<int32_t> filled;
        for (size_t i = 0; i < e.ids.size(); ++i) {
          const int32_t t = i == where[m] ? id : e.ids[i];
          if (t != pad) filled.push_back(t);
        }
        const std::string token_str = tokenizer->decode(std::vector<int32_t>{id});
        const std::string sequence = tokenizer->decode(filled, where.size() == 1);
        top.push_back(
            {{"score", row[id]}, {"token", id}, {"token_str", token_str}, {"sequence", sequence}});
        if (!o.json)
          std::cout << fmt::format("  {:<12} {:.4f}  {}\n", token_str, row[id], sequence);
      }
      masks.push_back(top);
    }
    all.push_back({{"text", text}, {"masks", masks}});
  }
  if (o.json) std::cout << all.dump(2) << "\n";
  return 0;
}

Command add_fill_mask_command(CLI::App& app) {
  auto o = std::make_shared<FillMaskOptions>();
  auto* cmd = app.add_subcommand(
      "fill-mask", "The likeliest tokens for each [MASK] of a text (models with an MLM head)");
  cmd->add_option("MODEL", o->model, "A run, checkpoint or model folder with its tokenizer")
      ->required();
  cmd->add_option("--text", o->texts, "A text holding [MASK] (may be repeated)");
  cmd->add_option("--file", o->file, "UTF-8 file, one text a line");
  cmd->add_option("--top", o->top_k, "Tokens to show per [MASK] (default 5)");
  cmd->add_flag("--json", o->json, "Print the predictions as JSON on stdout");
  return {cmd, [o] { return run_fill_mask(*o); }};
}

MOXING_CLI_COMMAND(add_fill_mask_command);

}  // namespace

}  // namespace moxing::tools
