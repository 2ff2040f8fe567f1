// The moxing command-line tool: one binary, one subcommand per job.
#include <CLI/CLI.hpp>
#include <iostream>

#include "bench.h"
#include "info.h"
#include "moxing/core/error.h"

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (bench->parsed()) return moxing::tools::run_bench(bench_opt);
    if (info->parsed()) return moxing::tools::run_info(info_path, info_json);
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
