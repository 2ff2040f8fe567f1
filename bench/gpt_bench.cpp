// `moxing bench-gpt`: a GPT-2 model with random weights (GPT-2 small by default: 12 layers,
// 12 heads, width 768, 50257 tokens), timed as bench/peer/gpt_torch.py times PyTorch and
// transformers: one AdamW training step on batch x seq random tokens (forward, loss,
// backward, optimizer step; dropout 0), and greedy KV-cache generation of new-tokens tokens
// after a prompt-tokens prompt. Prints the timings and the process's peak resident memory;
// bench/gpt_vs_peers.sh runs both sides and prints the ratios.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "command.h"
#include "moxing/core/allocator.h"
#include "moxing/models/causal_lm.h"
#include "moxing/models/family.h"
#include "moxing/models/generation.h"
#include "moxing/moxing.h"
#include "timing.h"

namespace moxing::tools {
namespace {

struct GptBenchOptions {
  std::string task = "train";
  int threads = 0;
  int64_t layers = 12, heads = 12, width = 768, vocab = 50257, positions = 1024;
  int64_t batch = 4, seq = 256, steps = 3;
  int64_t prompt_tokens = 32, new_tokens = 128;
  std::string model;  // --task load: a model folder
  bool json = false;
};

// VmRSS of /proc/self/status, in MiB (0 where there is none)
double current_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

// --task build: the model built on the meta device (shapes only), best of 5; --task load:
// models::from_pretrained of a folder (built on meta, weights viewing the mapped file), then the
// first forward of a --prompt-tokens prompt, which reads every weight; peer:
// bench/peer/gpt_torch.py --task load, compared by bench/load_vs_peers.sh.
int run_gpt_build_or_load(const GptBenchOptions& o) {
  nlohmann::json out = {{"peer", "moxing"}, {"task", o.task}};
  if (o.task == "build") {
    nlohmann::json fields = {{"n_layer", o.layers},
                             {"n_head", o.heads},
                             {"n_embd", o.width},
                             {"vocab_size", o.vocab},
                             {"n_positions", o.positions}};
    double best = 1e30;
    int64_t params = 0;
    for (int i = 0; i < 5; ++i) {
      auto t = Clock::now();
      DeviceGuard meta(kMeta);
      models::Model m = models::build_model(models::find_family("gpt2"), fields);
      best = std::min(best, seconds_since(t));
      params = m.module->num_parameters();
    }
    out["parameters"] = params;
    out["seconds"] = best;
    out["cpu_bytes_in_use"] = allocator_bytes_in_use(DeviceType::cpu);
  } else {
    MOXING_CHECK(!o.model.empty(), "bench-gpt --task load needs --model DIR");
    auto t = Clock::now();
    models::Model m = models::from_pretrained(o.model);
    out["seconds"] = seconds_since(t);
    out["parameters"] = m.module->num_parameters();
    out["rss_after_load_mb"] = current_rss_mb();
    // the first forward of a prompt-tokens prompt touches every weight (the mapped pages)
    auto& lm = m.expect<models::CausalLM>("a causal language model");
    // token i is (7919 i) mod vocab, as the peer's prompt
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < o.prompt_tokens; ++i) ids.push_back(7919 * i % lm.vocab_size());
    Tensor x = from_vector(ids, {1, o.prompt_tokens});
    t = Clock::now();
    {
      NoGradGuard no_grad;
      Tensor logits = lm.lm_head(lm.hidden_states(x));
      out["logits_sum"] = logits.to(DType::f64).sum().item<double>();
    }
    out["first_forward_seconds"] = seconds_since(t);
    uint64_t file_bytes = 0;
    for (const auto& e : std::filesystem::directory_iterator(o.model)) {
      if (e.path().extension() == ".safetensors") file_bytes += e.file_size();
    }
    out["file_mb"] = static_cast<double>(file_bytes) / (1024.0 * 1024.0);
  }
  out["peak_rss_mb"] = peak_rss_mb();
  std::cout << (o.json ? out.dump() : out.dump(2)) << "\n";
  return 0;
}

int run_gpt_bench(const GptBenchOptions& o) {
  if (o.threads > 0) set_num_threads(o.threads);
  if (o.task == "build" || o.task == "load") return run_gpt_build_or_load(o);
  MOXING_CHECK(o.task == "train" || o.task == "generate",
               "bench-gpt: --task must be train, generate, build or load, got {}", o.task);
  models::GPTConfig c;
  c.n_layer = o.layers;
  c.n_head = o.heads;
  c.n_embd = o.width;
  c.vocab_size = o.vocab;
  c.n_positions = o.positions;
  c.resid_pdrop = c.embd_pdrop = c.attn_pdrop = 0.0;
  Generator gen(0);
  models::GPT model(c, &gen);
  nlohmann::json out = {{"peer", "moxing"},         {"task", o.task},
                        {"threads", num_threads()}, {"layers", o.layers},
                        {"width", o.width},         {"heads", o.heads},
                        {"vocab", o.vocab},         {"parameters", model.num_parameters()}};
  if (o.task == "train") {
    model.train();
    auto opt = optim::make_optimizer("adamw", optim::decay_groups(model.named_parameters(), 0.1),
                                     {{"lr", 3e-4}});
    Tensor x = randint(0, o.vocab, {o.batch, o.seq}, DType::i64, &gen);
    auto step = [&] {
      Tensor logits = model.forward(x);  // (B,T,V)
      // labels = inputs shifted by one, as transformers' loss does with labels=input_ids
      Tensor pred = logits.narrow(1, 0, o.seq - 1).reshape({o.batch * (o.seq - 1), o.vocab});
      Tensor target = x.narrow(1, 1, o.seq - 1).reshape({o.batch * (o.seq - 1)});
      Tensor loss = cross_entropy(pred, target);
      loss.backward();
      opt->step();
      opt->zero_grad();
      return loss.item<float>();
    };
    step();
    std::vector<double> times;
    for (int64_t i = 0; i < o.steps; ++i) {
      auto t = Clock::now();
      step();
      times.push_back(seconds_since(t));
    }
    double mean = 0;
    for (double t : times) mean += t / static_cast<double>(times.size());
    out["batch"] = o.batch;
    out["seq"] = o.seq;
    out["step_seconds"] = mean;
    out["step_seconds_min"] = *std::min_element(times.begin(), times.end());
  } else {
    Tensor p = randint(0, o.vocab, {o.prompt_tokens}, DType::i64, &gen);
    std::vector<int32_t> prompt;
    for (int64_t v : p.to_vector<int64_t>()) prompt.push_back(static_cast<int32_t>(v));
    models::SamplingConfig s;
    s.greedy = true;
    s.max_new_tokens = 4;
    models::generate(model, prompt, s);  // warm-up
    s.max_new_tokens = o.new_tokens;
    auto t = Clock::now();
    std::vector<int32_t> ids = models::generate(model, prompt, s);
    double secs = seconds_since(t);
    out["prompt_tokens"] = o.prompt_tokens;
    out["new_tokens"] = ids.size();
    out["seconds"] = secs;
    out["tokens_per_s"] = static_cast<double>(ids.size()) / secs;
  }
  out["peak_rss_mb"] = peak_rss_mb();
  if (o.json) {
    std::cout << out.dump() << "\n";
  } else {
    std::cout << out.dump(2) << "\n";
  }
  return 0;
}

Command add_gpt_bench_command(CLI::App& app) {
  auto o = std::make_shared<GptBenchOptions>();
  auto* cmd = app.add_subcommand(
      "bench-gpt",
      "Time a GPT-2 training step or KV-cache generation (peer: bench/peer/gpt_torch.py)");
  cmd->add_option("--task", o->task,
                  "train (one AdamW step), generate (greedy, KV cache), build (on the meta "
                  "device) or load (from_pretrained of --model DIR)");
  cmd->add_option("--model", o->model, "The model folder for --task load");
  cmd->add_option("--threads", o->threads, "Threads (default: MOXING_NUM_THREADS or all cores)");
  cmd->add_option("--layers", o->layers, "n_layer (default 12)");
  cmd->add_option("--heads", o->heads, "n_head (default 12)");
  cmd->add_option("--width", o->width, "n_embd (default 768)");
  cmd->add_option("--vocab", o->vocab, "vocab_size (default 50257)");
  cmd->add_option("--positions", o->positions, "n_positions (default 1024)");
  cmd->add_option("--batch", o->batch, "Training batch (default 4)");
  cmd->add_option("--seq", o->seq, "Training sequence length (default 256)");
  cmd->add_option("--steps", o->steps, "Timed training steps after one warm-up (default 3)");
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "Prompt length (default 32)");
  cmd->add_option("--new-tokens", o->new_tokens, "Tokens to generate (default 128)");
  cmd->add_flag("--json", o->json, "One JSON line");
  return {cmd, [o] { return run_gpt_bench(*o); }};
}

MOXING_CLI_COMMAND(add_gpt_bench_command);

}  // namespace
}  // namespace moxing::tools
