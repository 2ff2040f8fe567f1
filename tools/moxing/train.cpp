// `moxing train`, `moxing eval`, `moxing predict` (see train.h).
#include "train.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/data/image.h"
#include "moxing/io/checkpoint.h"
#include "moxing/io/token_file.h"
#include "moxing/ops/shape.h"
#include "moxing/ops/softmax.h"
#include "moxing/train/checkpoint.h"
#include "moxing/train/lm_trainer.h"
#include "moxing/train/trainer.h"

namespace moxing::tools {

namespace fs = std::filesystem;

int run_train(const TrainCommandOptions& options) {
  std::string out = options.out;
  std::string config_path = options.config;
  bool resume = !options.resume.empty();
  if (resume) {
    MOXING_CHECK(out.empty() || (fs::exists(out) && fs::exists(options.resume) &&
                                 fs::equivalent(out, options.resume)),
                 "--out {} and --resume {} name different folders; a resumed run continues in "
                 "its own folder",
                 out, options.resume);
    out = options.resume;
    if (config_path.empty()) config_path = out + "/config.toml";
  }
  MOXING_CHECK(!config_path.empty(), "a config file is needed (moxing train CONFIG.toml)");
  train::Config config = train::Config::from_file(config_path);
  for (const std::string& s : options.sets) config.set(s);
  if (out.empty()) out = "runs/" + fs::path(config_path).stem().string();
  if (!resume) {
    MOXING_CHECK(!train::latest_checkpoint(out).has_value(),
                 "{} already holds a run; continue it with --resume {} or choose another --out",
                 out, out);
  }
  train::install_stop_signal_handlers();
  train::TrainOptions topt;
  topt.out_dir = out;
  topt.resume = resume;
  train::TrainSummary s = config.model.name == "gpt"
                              ? train::fit_lm(config, topt)
                              : train::fit(config, train::load_data(config), topt);
  if (options.json) {
    std::cout << s.to_json().dump(2) << "\n";
  } else {
    std::cout << fmt::format("{} after {} steps ({:.2f} epochs) in {:.1f} s\n",
                             s.interrupted ? "stopped" : "finished", s.steps, s.epochs, s.seconds);
    if (s.val_accuracy) {
      std::cout << fmt::format("val   loss {:.4f}  accuracy {:.4f}\n", *s.val_loss,
                               *s.val_accuracy);
    }
    if (s.val_perplexity && s.baseline_loss) {
      std::cout << fmt::format(
          "val   perplexity {:.2f}; unigram baseline loss {:.4f} (val loss / baseline = {:.3f})\n",
          *s.val_perplexity, *s.baseline_loss, *s.val_loss / *s.baseline_loss);
    }
    if (s.test_accuracy) {
      std::cout << fmt::format("test  loss {:.4f}  accuracy {:.4f}\n", *s.test_loss,
                               *s.test_accuracy);
    }
    std::cout << "run folder: " << out << "\n";
  }
  return s.interrupted ? 130 : 0;
}

namespace {

bool is_language_model(const std::string& path) {
  for (const char* sub : {"", "final", "best"}) {
    if (fs::exists(fs::path(path) / sub / "config.json")) return true;
  }
  auto latest = train::latest_checkpoint(path);
  return latest && fs::exists(fs::path(*latest) / "config.json");
}

// A GPT run: loss, perplexity and next-token accuracy on its validation token file.
int run_eval_lm(const EvalCommandOptions& options) {
  train::LoadedLM lm = train::load_language_model(options.path);
  // the run folder holding data/: the path itself, or above final/, best/, checkpoints/step-N
  fs::path model_dir = fs::absolute(lm.dir);
  std::optional<fs::path> run;
  for (const fs::path& p : {fs::absolute(options.path), model_dir.parent_path(),
                            model_dir.parent_path().parent_path()}) {
    if (fs::exists(p / "data" / "meta.json")) {
      run = p;
      break;
    }
  }
  MOXING_CHECK(run.has_value(),
               "{}: no data/meta.json of a `moxing train` run beside this model, so there is no "
               "validation split to evaluate; score a text file with `moxing perplexity {} FILE`",
               options.path, options.path);
  std::string meta_path = (*run / "data" / "meta.json").string();
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(read_text_file(meta_path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", meta_path, e.what());
  }
  MOXING_CHECK(meta.value("val_tokens", 0) > 0, "{}: the run has no validation split",
               run->string());
  MOXING_CHECK(meta.value("vocab_size", int64_t{0}) == lm.tokenizer->vocab_size(),
               "{}: the token files were made with a tokenizer of {} tokens, the model's has {}",
               meta_path, meta.value("vocab_size", int64_t{0}), lm.tokenizer->vocab_size());
  TokenFile val((*run / "data" / "val.bin").string(), meta.at("elem_size").get<int>());
  train::LMEvalResult r = train::evaluate_lm(*lm.model, val, 16);
  double baseline = meta.value("val_unigram_loss", 0.0);
  if (options.json) {
    nlohmann::json j = {{"split", "val"},         {"tokens", r.tokens},
                        {"loss", r.loss},         {"perplexity", std::exp(r.loss)},
                        {"accuracy", r.accuracy}, {"baseline_loss", baseline},
                        {"checkpoint", lm.dir}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << fmt::format(
        "{} on the val split ({} tokens)\nloss        {:.4f}\nperplexity  {:.2f}\naccuracy    "
        "{:.4f} (next token)\nbaseline    {:.4f} (unigram entropy; loss / baseline = {:.3f})\n",
        lm.dir, r.tokens, r.loss, std::exp(r.loss), r.accuracy, baseline, r.loss / baseline);
  }
  return 0;
}

}  // namespace

int run_eval(const EvalCommandOptions& options) {
  if (is_language_model(options.path)) return run_eval_lm(options);
  train::LoadedModel m = train::load_trained_model(options.path);
  train::Config config = m.config;
  if (!options.data.empty()) config.data.path = options.data;
  train::DataSplits data = train::load_data(config);
  data::DatasetPtr ds = data.test != nullptr ? data.test : data.val;
  std::string split = data.test != nullptr ? "test" : "val";
  MOXING_CHECK(ds != nullptr, "{} has neither a test nor a validation split", config.data.path);
  MOXING_CHECK(data.shape.num_classes == m.shape.num_classes,
               "the data has {} classes but the model was trained on {}", data.shape.num_classes,
               m.shape.num_classes);
  train::EvalResult r = train::evaluate(*m.model, ds, config.data.eval_batch_size,
                                        m.shape.num_classes, config.data.num_workers);
  if (options.json) {
    nlohmann::json j = r.report.to_json();
    j["loss"] = r.loss;
    j["split"] = split;
    j["checkpoint"] = m.checkpoint_dir;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << fmt::format("{} on the {} split ({} examples), loss {:.4f}\n\n", m.checkpoint_dir,
                             split, r.report.num_samples, r.loss);
    std::cout << r.report.to_table(m.class_names);
  }
  return 0;
}

int run_predict(const PredictCommandOptions& options) {
  MOXING_CHECK(!options.images.empty(), "no image given");
  train::LoadedModel m = train::load_trained_model(options.checkpoint);
  data::Transform transform = train::input_transform(m.config.data);
  int64_t k = std::clamp<int64_t>(options.top_k, 1, m.shape.num_classes);
  nlohmann::json all = nlohmann::json::array();
  NoGradGuard no_grad;
  for (const std::string& path : options.images) {
    Tensor image = data::read_image(path, static_cast<int>(m.shape.channels));  // (H,W,C) u8
    Generator gen(0);
    Tensor x = transform(image, gen).unsqueeze(0);                               // (1,C,H,W)
    Tensor probs = softmax(m.model->forward(x), 1).to(DType::f64).contiguous();  // (1,K)
    const double* p = probs.data<double>();
    std::vector<int64_t> order(static_cast<size_t>(m.shape.num_classes));
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    nlohmann::json top = nlohmann::json::array();
    if (!options.json) std::cout << path << "\n";
    for (int64_t i = 0; i < k; ++i) {
      int64_t c = order[static_cast<size_t>(i)];
      std::string name = c < static_cast<int64_t>(m.class_names.size())
                             ? m.class_names[static_cast<size_t>(c)]
                             : std::to_string(c);
      top.push_back({{"class", c}, {"name", name}, {"probability", p[c]}});
      if (!options.json) std::cout << fmt::format("  {:<16} {:.4f}\n", name, p[c]);
    }
    all.push_back({{"image", path}, {"top", top}});
  }
  if (options.json) std::cout << all.dump(2) << "\n";
  return 0;
}

}  // namespace moxing::tools
