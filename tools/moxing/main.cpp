// The moxing command-line tool: one binary, one subcommand per job.
#include <CLI/CLI.hpp>
#include <iostream>

#include "bench.h"
#include "command.h"
#include "info.h"
#include "moxing/core/error.h"
#include "train.h"

namespace moxing::tools {

std::vector<CommandFactory>& command_factories() {
  static std::vector<CommandFactory> factories;
  return factories;
}

}  // namespace moxing::tools

int main(int argc, char** argv) {
  CLI::App app{"moxing: build, train, evaluate and run neural networks"};
  app.set_version_flag("--version", std::string("moxing ") + MOXING_VERSION);
  app.require_subcommand(0, 1);

  auto* bench =
      app.add_subcommand("bench", "Measure GEMM, FMA peak and memory bandwidth on this machine");
  moxing::tools::BenchOptions bench_opt;
  bench->add_flag("--json", bench_opt.json, "Print the results as one JSON object on stdout");
  bench->add_option("--threads", bench_opt.threads,
                    "Threads to use (default: MOXING_NUM_THREADS or all cores)");
  bench->add_flag("--quick", bench_opt.quick, "Fewer repetitions (for smoke tests)");

  auto* info = app.add_subcommand(
      "info", "Show the tensors (name, dtype, shape), sizes and metadata of safetensors files");
  std::string info_path;
  bool info_json = false;
  info->add_option("PATH", info_path, "A .safetensors file, or a folder of them (a checkpoint)")
      ->required();
  info->add_flag("--json", info_json, "Print the summary as one JSON object on stdout");

  auto* train = app.add_subcommand(
      "train", "Train a model (image classifier or GPT language model) from a TOML config");
  moxing::tools::TrainCommandOptions train_opt;
  train->add_option("CONFIG", train_opt.config, "The run's config (.toml); optional with --resume");
  train
      ->add_option("--set", train_opt.sets, "Override a config key: section.key=value (repeatable)")
      ->allow_extra_args(false);
  train->add_option("--out", train_opt.out, "Run folder (default runs/<config name>)");
  train->add_option("--resume", train_opt.resume,
                    "Continue the run in this folder from its latest checkpoint");
  train->add_flag("--json", train_opt.json, "Print the final summary as one JSON object on stdout");

  auto* eval =
      app.add_subcommand("eval", "Measure a trained model on its test (or validation) split");
  moxing::tools::EvalCommandOptions eval_opt;
  eval->add_option("PATH", eval_opt.path, "A run folder or a checkpoint folder")->required();
  eval->add_option("--data", eval_opt.data, "Dataset folder replacing the config's [data] path");
  eval->add_flag("--json", eval_opt.json, "Print the metrics as one JSON object on stdout");

  auto* predict = app.add_subcommand("predict", "Classify images with a trained classifier");
  moxing::tools::PredictCommandOptions predict_opt;
  predict->add_option("CHECKPOINT", predict_opt.checkpoint, "A run folder or a checkpoint folder")
      ->required();
  predict->add_option("IMAGES", predict_opt.images, "Image files")->required();
  predict->add_option("--top", predict_opt.top_k, "Classes to show per image (default 3)");
  predict->add_flag("--json", predict_opt.json, "Print the predictions as JSON on stdout");

  std::vector<moxing::tools::Command> commands;
  for (auto factory : moxing::tools::command_factories()) commands.push_back(factory(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (bench->parsed()) return moxing::tools::run_bench(bench_opt);
    if (info->parsed()) return moxing::tools::run_info(info_path, info_json);
    if (train->parsed()) return moxing::tools::run_train(train_opt);
    if (eval->parsed()) return moxing::tools::run_eval(eval_opt);
    if (predict->parsed()) return moxing::tools::run_predict(predict_opt);
    for (const auto& c : commands)
      if (c.app->parsed()) return c.run();
    std::cout << app.help();
    return 0;
  } catch (const moxing::Error& e) {
    std::cerr << "moxing: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "moxing: error: " << e.what() << "\n";
    return 1;
  }
}
