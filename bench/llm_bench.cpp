// `moxing bench-llm MODEL`: prefill and decode speed of a language model (a GGUF file, a model
// or run folder, quantized or not) as llama.cpp's llama-bench measures them: prefill = one
// forward over --prompt-tokens tokens (logits of the last one only), decode = --gen-tokens
// single-token steps against the KV cache. Also the bytes of weights one decode step reads and,
// measured in the same run, the triad memory bandwidth: decode tokens/s x bytes / bandwidth is
// the fraction of the memory-bandwidth bound reached.
#include <sys/resource.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "command.h"
#include "moxing/autograd/node.h"
#include "moxing/core/parallel.h"
#include "moxing/models/causal_lm.h"
#include "moxing/nn/quantized.h"
#include "moxing/ops/quant.h"
#include "moxing/ops/random.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"
#include "moxing/train/tasks/causal_lm.h"
#include "timing.h"

namespace moxing::tools {

namespace {

struct LlmBenchOptions {
  std::string model;
  int64_t prompt_tokens = 128;
  int64_t gen_tokens = 64;
  int64_t repeats = 3;
  int threads = 0;
  std::string compute = "auto";
  bool json = false;
};

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

// Bytes of weights a decode step reads: every parameter once (a tied table counts once: the
// output head reads all of it), except an untied embedding table, of which one row is read.
uint64_t bytes_per_token(nn::Module& root) {
  std::set<const TensorImpl*> tables;
  std::set<const TensorImpl*> read_whole;
  root.for_each_module<nn::Embedding>(
      [&](const std::string&, nn::Embedding& e) { tables.insert(e.weight.impl()); });
  root.for_each_module<nn::QuantizedEmbedding>(
      [&](const std::string&, nn::QuantizedEmbedding& e) { tables.insert(e.weight.impl()); });
  root.for_each_module<nn::Linear>(
      [&](const std::string&, nn::Linear& l) { read_whole.insert(l.weight.impl()); });
  root.for_each_module<nn::QuantizedLinear>(
      [&](const std::string&, nn::QuantizedLinear& l) { read_whole.insert(l.weight.impl()); });
  uint64_t bytes = 0;
  std::set<const TensorImpl*> seen;
  for (const auto& [name, p] : root.named_parameters()) {
    if (!seen.insert(p.impl()).second) continue;
    const uint64_t b = dtype_nbytes(p.dtype(), p.numel());
    if (tables.count(p.impl()) && !read_whole.count(p.impl())) {
      bytes += b / static_cast<uint64_t>(std::max<int64_t>(1, p.size(0)));
    } else {
      bytes += b;
    }
  }
  return bytes;
}

// bytes of every parameter once, quantized ones at their block size
uint64_t weight_bytes(nn::Module& root) {
  uint64_t n = 0;
  std::set<const TensorImpl*> seen;
  for (const auto& [name, p] : root.named_parameters()) {
    if (seen.insert(p.impl()).second) n += dtype_nbytes(p.dtype(), p.numel());
  }
  return n;
}

int run_llm_bench(const LlmBenchOptions& o) {
  if (o.threads > 0) set_num_threads(o.threads);
  train::LoadedLM lm = train::load_language_model(o.model);
  nn::set_f32_compute(*lm.model.module, o.compute == "f32");
  models::CausalLM& model = *lm.lm;
  NoGradGuard no_grad;
  Generator gen(0);
  const int64_t vocab = model.vocab_size();
  const Tensor prompt = randint(0, vocab, {1, o.prompt_tokens}, DType::i64, &gen);
  // prefill: the whole prompt through a fresh cache, the head on its last position
  std::vector<double> prefill = time_repeats(o.repeats, [&] {
    models::KVCache cache = model.make_cache(1, o.prompt_tokens + o.gen_tokens);
    Tensor h = model.hidden_states(prompt, &cache);
    Tensor logits = model.lm_head(h.narrow(1, o.prompt_tokens - 1, 1));
    (void)logits.data<float>()[0];
  });
  // decode: greedy steps after the prompt, the steps alone timed
  std::vector<double> steps;
  for (int64_t r = 0; r < o.repeats; ++r) {
    models::KVCache cache = model.make_cache(1, o.prompt_tokens + o.gen_tokens);
    Tensor h = model.hidden_states(prompt, &cache);
    Tensor next = argmax(model.lm_head(h.narrow(1, o.prompt_tokens - 1, 1)), -1);
    auto t = Clock::now();
    for (int64_t s = 0; s < o.gen_tokens; ++s) {
      next = argmax(model.lm_head(model.hidden_states(next.reshape({1, 1}), &cache)), -1);
    }
    (void)next.data<int64_t>()[0];
    steps.push_back(seconds_since(t));
  }
  // peak memory of the run so far (model, cache, activations), before the bandwidth arrays
  const double peak_rss = peak_rss_mib();
  uint64_t kv_bytes = 0;
  {
    models::KVCache cache = model.make_cache(1, o.prompt_tokens + o.gen_tokens);
    for (const auto* side : {&cache.k, &cache.v}) {
      for (const Tensor& t : *side) kv_bytes += dtype_nbytes(t.dtype(), t.numel());
    }
  }
  const double prefill_tps = static_cast<double>(o.prompt_tokens) / median(prefill);
  const double decode_tps = static_cast<double>(o.gen_tokens) / median(steps);
  const uint64_t bytes = bytes_per_token(*lm.model.module);
  const double triad = triad_gbps(int64_t{1} << 25, 3);
  const double fraction = decode_tps * static_cast<double>(bytes) / (triad * 1e9);
  nlohmann::json out = {
      {"peer", "moxing"},
      {"model", o.model},
      {"threads", num_threads()},
      {"compute", o.compute},
      {"quant_isa", quantized_products_isa()},
      {"prompt_tokens", o.prompt_tokens},
      {"gen_tokens", o.gen_tokens},
      {"prefill_tokens_per_s", prefill_tps},
      {"decode_tokens_per_s", decode_tps},
      {"weight_bytes_per_token", bytes},
      {"triad_gbps", triad},
      {"bandwidth_bound_fraction", fraction},
      {"kv_cache_mib", static_cast<double>(kv_bytes) / (1 << 20)},
      {"weights_mib", static_cast<double>(weight_bytes(*lm.model.module)) / (1 << 20)},
      {"peak_rss_mib", peak_rss}};
  if (o.json) {
    std::cout << out.dump() << "\n";
  } else {
    std::cout << out.dump(2) << "\n";
  }
  return 0;
}

Command add_llm_bench_command(CLI::App& app) {
  auto o = std::make_shared<LlmBenchOptions>();
  auto* cmd = app.add_subcommand(
      "bench-llm", "Prefill and decode tokens/s of a language model, against memory bandwidth");
  cmd->add_option("MODEL", o->model, "GGUF file, model folder or `moxing train` run folder")
      ->required();
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "Prompt length for prefill (default 128)");
  cmd->add_option("--gen-tokens", o->gen_tokens, "Decode steps (default 64)");
  cmd->add_option("--repeats", o->repeats, "Timed runs; the median is reported (default 3)");
  cmd->add_option("--threads", o->threads, "Threads (default: MOXING_NUM_THREADS or all cores)");
  cmd->add_option("--compute", o->compute, "auto or f32 (dequantized weights in f32)")
      ->check(CLI::IsMember({"auto", "f32"}));
  cmd->add_flag("--json", o->json, "Print one JSON line");
  return {cmd, [o] { return run_llm_bench(*o); }};
}

MOXING_CLI_COMMAND(add_llm_bench_command);

}  // namespace

}  // namespace moxing::tools
