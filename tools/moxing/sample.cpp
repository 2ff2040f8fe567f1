// `moxing sample RUN [--n N] [--seed S] [--out grid.png] [--classifier DIR] [--json]`: images
// from a trained generator (a gan run, checkpoint or generator folder) as a grid, and, with a
// classifier, their classifier-based Inception Score and class histogram beside the score of the
// classifier's real test images.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "moxing/core/error.h"
#include "moxing/data/image.h"
#include "moxing/io/checkpoint.h"
#include "moxing/train/tasks/gan.h"
#include "moxing/train/trainer.h"

namespace moxing::tools {

namespace {

struct SampleOptions {
  std::string model;
  int64_t n = 64;
  uint64_t seed = 0;
  int64_t nrow = 8;
  std::string out;
  std::string classifier;
  int64_t splits = 10;
  bool json = false;
};

nlohmann::json score_json(const train::InceptionScore& s, const std::vector<std::string>& names) {
  nlohmann::json hist = nlohmann::json::object();
  for (size_t i = 0; i < s.histogram.size(); ++i) hist[names.at(i)] = s.histogram[i];
  return {{"samples", s.samples},       {"inception_score", s.score}, {"splits", s.splits},
          {"split_mean", s.split_mean}, {"split_std", s.split_std},   {"histogram", hist}};
}

std::string score_text(const std::string& what, const train::InceptionScore& s,
                       const std::vector<std::string>& names) {
  std::string text = fmt::format(
      "{}: {} images, Inception Score {:.3f} (over {} splits: {:.3f} "
      "+- {:.3f})\n",
      what, s.samples, s.score, s.splits, s.split_mean, s.split_std);
  for (size_t i = 0; i < s.histogram.size(); ++i) {
    text +=
        fmt::format("  {:<14} {:>6} ({:.1f}%)\n", names.at(i), s.histogram[i],
                    100.0 * static_cast<double>(s.histogram[i]) / static_cast<double>(s.samples));
  }
  return text;
}

int run_sample(const SampleOptions& o) {
  MOXING_CHECK(o.n > 0, "sample: --n must be > 0, got {}", o.n);
  MOXING_CHECK(o.nrow > 0, "sample: --nrow must be > 0, got {}", o.nrow);
  MOXING_CHECK(!o.out.empty() || !o.classifier.empty(),
               "sample: nothing to do: give --out for a grid and/or --classifier for a score");
  train::LoadedRun run = train::load_run(o.model);
  auto& generator = run.model.expect<models::ImageGenerator>(
      "an image generator (a run of the gan task, or its generator folder)");
  auto start = std::chrono::steady_clock::now();
  Tensor images = train::sample_images(generator, o.n, o.seed);  // (n,C,H,W) in [-1, 1]
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  nlohmann::json j = {
      {"model", run.checkpoint_dir}, {"n", o.n}, {"seed", o.seed}, {"sample_seconds", secs}};
  std::string text;
  if (!o.out.empty()) {
    write_text_file_atomic(o.out, data::encode_png(data::make_grid(images, o.nrow)));
    j["out"] = o.out;
    text +=
        fmt::format("{} images from {} in {:.2f} s -> {}\n", o.n, run.checkpoint_dir, secs, o.out);
  }
  if (!o.classifier.empty()) {
    train::ImageClassifierScorer scorer(o.classifier);
    train::InceptionScore fake =
        train::inception_score(scorer.probs(images), std::min<int64_t>(o.splits, o.n));
    Tensor real_probs = scorer.test_probs();
    train::InceptionScore real =
        train::inception_score(real_probs, std::min<int64_t>(o.splits, real_probs.size(0)));
    j["classifier"] = o.classifier;
    j["samples"] = score_json(fake, scorer.class_names());
    j["real_test"] = score_json(real, scorer.class_names());
    text += score_text("samples", fake, scorer.class_names());
    text += score_text("real test images", real, scorer.class_names());
  }
  if (o.json) {
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << text;
  }
  return 0;
}

Command add_sample_command(CLI::App& app) {
  auto o = std::make_shared<SampleOptions>();
  auto* cmd = app.add_subcommand(
      "sample",
      "Images from a trained generator (a gan run), as a grid and/or scored by a "
      "classifier (Inception Score, class histogram)");
  cmd->add_option("MODEL", o->model,
                  "Run folder of the gan task, one of its checkpoints, or a generator folder")
      ->required();
  cmd->add_option("--n", o->n, "Images to generate (default 64)");
  cmd->add_option("--seed", o->seed, "Seed of the latent vectors (default 0)");
  cmd->add_option("--out", o->out, "Write the images as one PNG grid");
  cmd->add_option("--nrow", o->nrow, "Images per row of the grid (default 8)");
  cmd->add_option("--classifier", o->classifier,
                  "Image classifier run (e.g. of examples/cnn-fashion-mnist.toml): report the "
                  "Inception Score of the images and of its real test images, and the class "
                  "histogram");
  cmd->add_option("--splits", o->splits,
                  "Equal parts the score is also averaged over (default 10)");
  cmd->add_flag("--json", o->json, "Print the results as one JSON object");
  return {cmd, [o] { return run_sample(*o); }};
}

MOXING_CLI_COMMAND(add_sample_command);

}  // namespace

}  // namespace moxing::tools
