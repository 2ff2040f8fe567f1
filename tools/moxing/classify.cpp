// `moxing classify DIR --text T | --file F [--top K] [--json]`: labels of texts from a trained
// (or downloaded) sequence classifier, with the tokenizer saved beside it.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/softmax.h"
#include "moxing/train/tasks/sequence_classification.h"
#include "moxing/train/trainer.h"
#include "text_input.h"

namespace moxing::tools {

namespace {

struct ClassifyOptions {
  std::string model;
  std::vector<std::string> texts;
  std::string file;
  int64_t top_k = 3;
  int64_t max_length = 0;
  bool json = false;
};

int run_classify(const ClassifyOptions& o) {
  std::vector<std::string> texts = read_input_texts(o.texts, o.file, "classify");
  train::LoadedRun run = train::load_run(o.model);
  auto& model = run.model.expect<models::SequenceClassifier>(
      "a sequence classifier (BertForSequenceClassification, or a run of the "
      "sequence-classification task)");
  auto tokenizer = tokenizers::load_tokenizer(run.checkpoint_dir);
  const std::string problem = train::problem_type_of(model);
  const std::vector<std::string> labels = model.labels();
  int64_t window = 512;
  if (auto* enc = run.model.as<models::TextEncoder>()) window = enc->max_positions();
  const int64_t max_length = o.max_length > 0 ? std::min(o.max_length, window) : window;
  std::vector<tokenizers::Encoding> enc;
  int64_t cut = 0;
  for (const std::string& t : texts) {
    bool truncated = false;
    enc.push_back(train::encode_text(*tokenizer, t, std::nullopt, max_length, &truncated));
    cut += truncated;
  }
  if (cut > 0) {
    std::cerr << fmt::format("note: {} of {} texts are longer than {} tokens and were cut\n", cut,
                             texts.size(), max_length);
  }
  const int64_t K = model.num_labels();
  std::vector<std::vector<double>> scores(texts.size());
  NoGradGuard no_grad;
  const int32_t pad = train::pad_token_id(*tokenizer);
  for (const std::vector<int64_t>& idx : train::length_batches(enc, 32)) {
    Tensor logits = model.classify(train::pad_batch(enc, idx, pad)).to(DType::f32);
    Tensor s = problem == train::kSingleLabel  ? softmax(logits, 1)
               : problem == train::kMultiLabel ? sigmoid(logits)
                                               : logits;
    std::vector<float> v = s.contiguous().to_vector<float>();
    for (size_t r = 0; r < idx.size(); ++r) {
      scores[static_cast<size_t>(idx[r])].assign(v.begin() + static_cast<ptrdiff_t>(r * K),
                                                 v.begin() + static_cast<ptrdiff_t>((r + 1) * K));
    }
  }
  nlohmann::json all = nlohmann::json::array();
  const int64_t k = std::clamp<int64_t>(o.top_k, 1, K);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<double>& p = scores[i];
    nlohmann::json row = {{"text", texts[i]}};
    if (problem == train::kRegression) {
      row["value"] = K == 1 ? nlohmann::json(p[0]) : nlohmann::json(p);
      if (!o.json) std::cout << fmt::format("{:.4f}\t{}\n", fmt::join(p, " "), texts[i]);
      all.push_back(row);
      continue;
    }
    std::vector<int64_t> order(static_cast<size_t>(K));
    for (size_t c = 0; c < order.size(); ++c) order[c] = static_cast<int64_t>(c);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return p[static_cast<size_t>(a)] > p[static_cast<size_t>(b)];
    });
    nlohmann::json top = nlohmann::json::array();
    if (!o.json) std::cout << texts[i] << "\n";
    for (int64_t j = 0; j < k; ++j) {
      const auto c = static_cast<size_t>(order[static_cast<size_t>(j)]);
      const std::string& name = labels[c];
      top.push_back({{"label", name}, {"id", c}, {"score", p[c]}});
      if (!o.json) std::cout << fmt::format("  {:<16} {:.4f}\n", name, p[c]);
    }
    row["label"] = top[0]["label"];
    row["top"] = top;
    all.push_back(row);
  }
  if (o.json) std::cout << all.dump(2) << "\n";
  return 0;
}

Command add_classify_command(CLI::App& app) {
  auto o = std::make_shared<ClassifyOptions>();
  auto* cmd = app.add_subcommand(
      "classify", "Label texts with a sequence classifier (a run folder or a model folder)");
  cmd->add_option("MODEL", o->model, "A run, checkpoint or model folder with its tokenizer")
      ->required();
  cmd->add_option("--text", o->texts, "A text to classify (may be repeated)");
  cmd->add_option("--file", o->file, "UTF-8 file, one text a line");
  cmd->add_option("--top", o->top_k, "Labels to show per text (default 3)");
  cmd->add_option("--max-length", o->max_length,
                  "Cut texts to this many tokens (default: the model's window)");
  cmd->add_flag("--json", o->json, "Print the predictions as JSON on stdout");
  return {cmd, [o] { return run_classify(*o); }};
}

MOXING_CLI_COMMAND(add_classify_command);

}  // namespace

}  // namespace moxing::tools
