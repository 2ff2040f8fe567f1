// `moxing bench-lstm`: one forward + backward of a stacked LSTM (default: 2 layers, input and
// hidden 512, batch 32, 100 steps; the shape of bench/peer/lstm_torch.py), timed on the same
// threads as the peer. The loss is sum(output * g) for a fixed g, so backward starts from the
// whole output as a training step's would.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "command.h"
#include "moxing/moxing.h"
#include "timing.h"

namespace moxing::tools {
namespace {

struct Options {
  bool json = false;
  int threads = 0;
  int64_t layers = 2, input = 512, hidden = 512, batch = 32, steps = 100, repeats = 5;
};

int run(const Options& o) {
  if (o.threads > 0) set_num_threads(o.threads);
  Generator gen(0);
  nn::LSTM lstm(
      nn::RNNOptions{.input_size = o.input, .hidden_size = o.hidden, .num_layers = o.layers}, &gen);
  Tensor x = randn({o.steps, o.batch, o.input}, DType::f32, &gen).requires_grad_();
  Tensor g = randn({o.steps, o.batch, o.hidden}, DType::f32, &gen);
  auto step = [&] {
    lstm.zero_grad();
    x.zero_grad();
    nn::RNNOutput r = lstm.forward(x);
    sum(mul(r.output, g)).backward();
  };
  std::vector<double> fb = time_repeats(o.repeats, step);
  std::vector<double> fwd = time_repeats(o.repeats, [&] {
    NoGradGuard no_grad;
    lstm.forward(x);
  });
  nlohmann::json j;
  j["peer"] = "moxing";
  j["threads"] = num_threads();
  j["shape"] = {{"layers", o.layers},
                {"input", o.input},
                {"hidden", o.hidden},
                {"batch", o.batch},
                {"steps", o.steps}};
  j["train_seconds"] = median(fb);
  j["forward_seconds"] = median(fwd);
  if (o.json) {
    std::cout << j.dump() << "\n";
  } else {
    std::printf(
        "moxing bench-lstm: %d threads, %lld layers, input %lld, hidden %lld, batch %lld, "
        "%lld steps; median of %lld\n",
        num_threads(), static_cast<long long>(o.layers), static_cast<long long>(o.input),
        static_cast<long long>(o.hidden), static_cast<long long>(o.batch),
        static_cast<long long>(o.steps), static_cast<long long>(o.repeats));
    std::printf("forward + backward  %8.3f s\nforward (no grad)   %8.3f s\n", median(fb),
                median(fwd));
  }
  return 0;
}

Command add_bench_lstm_command(CLI::App& app) {
  auto* sub = app.add_subcommand("bench-lstm", "Time a stacked LSTM's forward and backward");
  auto opt = std::make_shared<Options>();
  sub->add_flag("--json", opt->json, "Print the results as one JSON object on stdout");
  sub->add_option("--threads", opt->threads, "Threads (default: MOXING_NUM_THREADS or all cores)");
  sub->add_option("--layers", opt->layers, "LSTM layers")->capture_default_str();
  sub->add_option("--input", opt->input, "Input features")->capture_default_str();
  sub->add_option("--hidden", opt->hidden, "Hidden size")->capture_default_str();
  sub->add_option("--batch", opt->batch, "Batch size")->capture_default_str();
  sub->add_option("--steps", opt->steps, "Time steps")->capture_default_str();
  sub->add_option("--repeats", opt->repeats, "Timed repetitions (after one warm-up)")
      ->capture_default_str();
  return {sub, [opt] { return run(*opt); }};
}

}  // namespace

MOXING_CLI_COMMAND(add_bench_lstm_command);

}  // namespace moxing::tools
