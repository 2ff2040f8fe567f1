// `moxing train` (a config's task in the training loop), `moxing eval` (a trained model on its
// test or validation split, by its task) and `moxing predict` (images through a classifier).
#include "command.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/data/image.h"
#include "moxing/nn/quantized.h"
#include "moxing/ops/shape.h"
#include "moxing/ops/softmax.h"
#include "moxing/train/checkpoint.h"
#include "moxing/train/tasks/image_classification.h"
#include "moxing/train/trainer.h"

namespace moxing::tools {

namespace fs = std::filesystem;

namespace {

struct TrainCommandOptions {
  std::string config;             // CONFIG.toml; may be empty with resume (RESUME/config.toml)
  std::vector<std::string> sets;  // "section.key=value" overrides, in order
  std::string out;                // run folder; default runs/<config name>, or the resume folder
  std::string resume;             // run folder to continue from its latest checkpoint
  bool json = false;              // final summary as one JSON object on stdout
};

struct EvalCommandOptions {
  std::string path;      // a run folder or a checkpoint folder
  std::string data;      // dataset folder replacing the config's [data] path
  std::string quantize;  // quantize the Linear layers first (q8_0, q4_0, q4_1, q4_k)
  bool json = false;
};

struct PredictCommandOptions {
  std::string checkpoint;           // a run folder or a checkpoint folder
  std::vector<std::string> images;  // image files
  int64_t top_k = 3;
  bool json = false;
};

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
  train::TrainSummary s = train::fit(config, topt);
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

int run_eval(const EvalCommandOptions& options) {
  train::LoadedRun run = train::load_run(options.path);
  if (!options.quantize.empty()) {
    nn::QuantizeOptions q;
    q.type = nn::quantize_type_from_name(options.quantize, "--quantize");
    nn::QuantizeReport report = nn::quantize_modules(*run.model.module, q);
    std::map<std::string, int> counts;
    for (const auto& [path, t] : report) counts[dtype_name(t)] += 1;
    std::string summary;
    for (const auto& [name, n] : counts)
      summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", n, name);
    std::cerr << fmt::format("quantized for this evaluation: {} layers\n", summary);
  }
  auto task = train::make_task(train::task_name(run.config), run.config);
  train::EvalReport r = task->evaluate(run, options.data);
  std::cout << (options.json ? r.json.dump(2) + "\n" : r.text);
  return 0;
}

int run_predict(const PredictCommandOptions& options) {
  MOXING_CHECK(!options.images.empty(), "no image given");
  train::LoadedRun m = train::load_run(options.checkpoint);
  auto* classifier = m.model.as<nn::UnaryModule>();
  const int64_t num_classes = m.model.config.value("num_labels", int64_t{0});
  const int64_t channels = m.model.config.value("num_channels", int64_t{0});
  MOXING_CHECK(classifier != nullptr && num_classes > 0 && channels > 0,
               "{}: a {} model is not an image classifier", m.checkpoint_dir, m.model.family->name);
  data::Transform transform = train::input_transform(m.config.data);
  std::vector<std::string> class_names =
      m.trainer_state.value("class_names", std::vector<std::string>{});
  int64_t k = std::clamp<int64_t>(options.top_k, 1, num_classes);
  nlohmann::json all = nlohmann::json::array();
  NoGradGuard no_grad;
  for (const std::string& path : options.images) {
    Tensor image = data::read_image(path, static_cast<int>(channels));  // (H,W,C) u8
    Generator gen(0);
    Tensor x = transform(image, gen).unsqueeze(0);                                  // (1,C,H,W)
    Tensor probs = softmax(classifier->forward(x), 1).to(DType::f64).contiguous();  // (1,K)
    const double* p = probs.data<double>();
    std::vector<int64_t> order(static_cast<size_t>(num_classes));
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    nlohmann::json top = nlohmann::json::array();
    if (!options.json) std::cout << path << "\n";
    for (int64_t i = 0; i < k; ++i) {
      int64_t c = order[static_cast<size_t>(i)];
      std::string name = c < static_cast<int64_t>(class_names.size())
                             ? class_names[static_cast<size_t>(c)]
                             : std::to_string(c);
      top.push_back({{"class", c}, {"name", name}, {"probability", p[c]}});
      if (!options.json) std::cout << fmt::format("  {:<16} {:.4f}\n", name, p[c]);
    }
    all.push_back({{"image", path}, {"top", top}});
  }
  if (options.json) std::cout << all.dump(2) << "\n";
  return 0;
}

Command add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainCommandOptions>();
  auto* cmd = app.add_subcommand(
      "train", "Train a model (any registered family and task) from a TOML config");
  cmd->add_option("CONFIG", o->config, "The run's config (.toml); optional with --resume");
  cmd->add_option("--set", o->sets, "Override a config key: section.key=value (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--out", o->out, "Run folder (default runs/<config name>)");
  cmd->add_option("--resume", o->resume,
                  "Continue the run in this folder from its latest checkpoint");
  cmd->add_flag("--json", o->json, "Print the final summary as one JSON object on stdout");
  return {cmd, [o] { return run_train(*o); }};
}

Command add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalCommandOptions>();
  auto* cmd =
      app.add_subcommand("eval", "Measure a trained model on its test (or validation) split");
  cmd->add_option("PATH", o->path, "A run folder or a checkpoint folder")->required();
  cmd->add_option("--data", o->data, "Dataset folder replacing the config's [data] path");
  cmd->add_option("--quantize", o->quantize,
                  "Quantize the model's Linear layers first (q8_0, q4_0, q4_1, q4_k; embeddings "
                  "q8_0) to measure what quantization costs");
  cmd->add_flag("--json", o->json, "Print the metrics as one JSON object on stdout");
  return {cmd, [o] { return run_eval(*o); }};
}

Command add_predict_command(CLI::App& app) {
  auto o = std::make_shared<PredictCommandOptions>();
  auto* cmd = app.add_subcommand("predict", "Classify images with a trained classifier");
  cmd->add_option("CHECKPOINT", o->checkpoint, "A run folder or a checkpoint folder")->required();
  cmd->add_option("IMAGES", o->images, "Image files")->required();
  cmd->add_option("--top", o->top_k, "Classes to show per image (default 3)");
  cmd->add_flag("--json", o->json, "Print the predictions as JSON on stdout");
  return {cmd, [o] { return run_predict(*o); }};
}

MOXING_CLI_COMMAND(add_train_command);
MOXING_CLI_COMMAND(add_eval_command);
MOXING_CLI_COMMAND(add_predict_command);

}  // namespace

}  // namespace moxing::tools
