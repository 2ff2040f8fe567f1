// `moxing bench-attention`: scaled_dot_product_attention through the fused kernel against the
// composite (scaled_dot_product_attention_math) in the same run: a GPT-2-small training
// shape (forward + backward, causal, without and with attention dropout), its inference
// forward, and KV-cache decoding steps (one query, S cached keys).
// The PyTorch peer is measured by a script, not here.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "command.h"
#include "moxing/moxing.h"

namespace moxing::tools {
namespace {

using Clock = std::chrono::steady_clock;

// Median of `reps` runs of f (after one warm-up run), in milliseconds.
template <class F>
double median_ms(int reps, const F& f) {
  f();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// (B,NH,R,C) values stored as (B,R,NH,C): q, k, v as a GPT-2 block splits them from one
// projection
Tensor heads_view(int64_t B, int64_t NH, int64_t R, int64_t C, Generator& gen) {
  return randn({B, R, NH, C}, DType::f32, &gen).transpose(1, 2);
}

struct Row {
  std::string name;
  double fused_ms, math_ms;
};

// forward + backward at (B,NH,T,HS), causal, with attention dropout p
Row training_step(int64_t B, int64_t NH, int64_t T, int64_t HS, double p, int reps) {
  Generator gen(1);
  Tensor q = heads_view(B, NH, T, HS, gen), k = heads_view(B, NH, T, HS, gen);
  Tensor v = heads_view(B, NH, T, HS, gen), gy = heads_view(B, NH, T, HS, gen);
  auto step = [&](bool fused) {
    Tensor ql = q.detach().requires_grad_(), kl = k.detach().requires_grad_();
    Tensor vl = v.detach().requires_grad_();
    Tensor y = fused
                   ? scaled_dot_product_attention(ql, kl, vl, {}, p, true, std::nullopt, &gen)
                   : scaled_dot_product_attention_math(ql, kl, vl, {}, p, true, std::nullopt, &gen);
    y.backward(gy);
  };
  std::string name = "fwd+bwd causal (" + std::to_string(B) + "," + std::to_string(NH) + "," +
                     std::to_string(T) + "," + std::to_string(HS) + ")";
  if (p > 0.0) name += " p=" + std::to_string(p).substr(0, 3);
  return {name, median_ms(reps, [&] { step(true); }), median_ms(reps, [&] { step(false); })};
}

// forward only, no graph, at (B,NH,T,HS), causal
Row inference_forward(int64_t B, int64_t NH, int64_t T, int64_t HS, int reps) {
  Generator gen(2);
  Tensor q = heads_view(B, NH, T, HS, gen), k = heads_view(B, NH, T, HS, gen);
  Tensor v = heads_view(B, NH, T, HS, gen);
  NoGradGuard no_grad;
  std::string name = "fwd causal, no grad (" + std::to_string(B) + "," + std::to_string(NH) + "," +
                     std::to_string(T) + "," + std::to_string(HS) + ")";
  return {name, median_ms(reps, [&] { scaled_dot_product_attention(q, k, v, {}, 0.0, true); }),
          median_ms(reps, [&] { scaled_dot_product_attention_math(q, k, v, {}, 0.0, true); })};
}

// one decoding step: q (1,NH,1,HS) against S cached keys, the cache a (1,NH,S,HS) slice of
// a longer buffer as a KV cache holds it
Row decode_step(int64_t NH, int64_t S, int64_t HS, int reps) {
  Generator gen(3);
  Tensor q = randn({1, NH, 1, HS}, DType::f32, &gen);
  Tensor k = randn({1, NH, 1024, HS}, DType::f32, &gen).narrow(2, 0, S);
  Tensor v = randn({1, NH, 1024, HS}, DType::f32, &gen).narrow(2, 0, S);
  NoGradGuard no_grad;
  std::string name =
      "decode (1," + std::to_string(NH) + ",1," + std::to_string(HS) + ") S=" + std::to_string(S);
  return {name, median_ms(reps, [&] { scaled_dot_product_attention(q, k, v); }),
          median_ms(reps, [&] { scaled_dot_product_attention_math(q, k, v); })};
}

struct Options {
  bool json = false;
  int threads = 0;
  bool quick = false;
};

int run(const Options& opt) {
  if (opt.threads > 0) set_num_threads(opt.threads);
  const int reps = opt.quick ? 2 : 20;
  std::vector<Row> rows;
  rows.push_back(training_step(4, 12, 256, 64, 0.0, opt.quick ? 1 : 10));
  rows.push_back(training_step(4, 12, 256, 64, 0.1, opt.quick ? 1 : 10));
  rows.push_back(inference_forward(4, 12, 256, 64, opt.quick ? 1 : 10));
  for (int64_t S : {1, 128, 512, 1024}) rows.push_back(decode_step(12, S, 64, reps * 10));
  if (opt.json) {
    nlohmann::json j;
    j["threads"] = num_threads();
    for (const Row& r : rows) j["ms"][r.name] = {{"fused", r.fused_ms}, {"math", r.math_ms}};
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf("moxing bench-attention: %d threads, median ms%s\n\n", num_threads(),
              opt.quick ? " (quick: numbers are not meaningful)" : "");
  std::printf("%-36s %10s %10s %8s\n", "case", "fused", "composite", "speedup");
  for (const Row& r : rows) {
    std::printf("%-36s %10.3f %10.3f %7.1fx\n", r.name.c_str(), r.fused_ms, r.math_ms,
                r.math_ms / r.fused_ms);
  }
  return 0;
}

Command add_bench_attention_command(CLI::App& app) {
  auto* sub = app.add_subcommand("bench-attention",
                                 "Time the fused attention kernel against the composite attention");
  auto opt = std::make_shared<Options>();
  sub->add_flag("--json", opt->json, "Print the results as one JSON object on stdout");
  sub->add_option("--threads", opt->threads, "Threads (default: MOXING_NUM_THREADS or all cores)");
  sub->add_flag("--quick", opt->quick, "Fewer repetitions (for smoke tests)");
  return {sub, [opt] { return run(*opt); }};
}

}  // namespace

MOXING_CLI_COMMAND(add_bench_attention_command);

}  // namespace moxing::tools
