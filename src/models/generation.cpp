// Token-by-token generation with or without the KV cache, the logits processors of
// transformers' generate(), and sliding-window perplexity.
#include "moxing/models/generation.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>

#include "moxing/autograd/node.h"
#include "moxing/core/rng.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/shape.h"

namespace moxing::models {

namespace {

// Puts a model in eval mode for its lifetime and restores the mode it found.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(nn::Module& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
  ~EvalModeGuard() { m_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  nn::Module& m_;
  bool was_training_;
};

Tensor ids_tensor(const std::vector<int32_t>& ids, size_t begin, size_t end) {
  std::vector<int64_t> v(ids.begin() + static_cast<std::ptrdiff_t>(begin),
                         ids.begin() + static_cast<std::ptrdiff_t>(end));
  return from_vector(v, {1, static_cast<int64_t>(v.size())});
}

void check_ids(const std::vector<int32_t>& ids, int64_t vocab_size, const char* who) {
  for (size_t i = 0; i < ids.size(); ++i) {
    MOXING_CHECK(ids[i] >= 0 && ids[i] < vocab_size,
                 "{}: token {} at position {} is outside the vocabulary [0, {})", who, ids[i], i,
                 vocab_size);
  }
}

}  // namespace

int32_t sample_next_token(std::vector<float> logits, const std::vector<int32_t>& seen,
                          const SamplingConfig& cfg, double u) {
  const size_t V = logits.size();
  MOXING_CHECK(V > 0, "sample_next_token: empty logits");
  if (cfg.repetition_penalty != 1.0) {
    // each token seen is penalized once, however often it occurred (as transformers)
    std::vector<bool> done(V, false);
    const auto r = static_cast<float>(cfg.repetition_penalty);
    for (int32_t id : seen) {
      auto i = static_cast<size_t>(id);
      if (id < 0 || i >= V || done[i]) continue;
      done[i] = true;
      logits[i] = logits[i] > 0 ? logits[i] / r : logits[i] * r;
    }
  }
  if (cfg.greedy || cfg.temperature == 0.0) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  std::vector<double> x(V);
  for (size_t i = 0; i < V; ++i) x[i] = static_cast<double>(logits[i]) / cfg.temperature;
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  if (cfg.top_k > 0 && static_cast<size_t>(cfg.top_k) < V) {
    // keep every logit >= the k-th largest (ties with it stay, as torch.topk's threshold)
    std::vector<double> sorted = x;
    auto kth = sorted.begin() + (cfg.top_k - 1);
    std::nth_element(sorted.begin(), kth, sorted.end(), std::greater<double>());
    const double threshold = *kth;
    for (double& v : x) {
      if (v < threshold) v = kNegInf;
    }
  }
  const double max = *std::max_element(x.begin(), x.end());
  std::vector<double> p(V);
  double total = 0.0;
  for (size_t i = 0; i < V; ++i) total += p[i] = std::exp(x[i] - max);
  for (double& v : p) v /= total;
  if (cfg.top_p < 1.0) {
    // nucleus: the most likely tokens while the probability before each is < top_p (so the
    // first token is always kept); transformers removes the ascending cumsum <= 1 - top_p
    std::vector<size_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
    double before = 0.0;
    for (size_t j = 0; j < V; ++j) {
      size_t i = order[j];
      double pi = p[i];
      if (before >= cfg.top_p) p[i] = 0.0;
      before += pi;
    }
  }
  double kept = std::accumulate(p.begin(), p.end(), 0.0);
  double target = u * kept, acc = 0.0;
  size_t last = 0;
  for (size_t i = 0; i < V; ++i) {
    if (p[i] <= 0.0) continue;
    last = i;
    acc += p[i];
    if (acc > target) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last);
}

std::vector<int32_t> generate(CausalLM& model, const std::vector<int32_t>& prompt,
                              const SamplingConfig& cfg,
                              const std::function<bool(int32_t)>& on_token) {
  const int64_t context = model.context_length();
  const auto P = static_cast<int64_t>(prompt.size());
  MOXING_CHECK(P > 0,
               "generate: the prompt is empty; pass at least one token, e.g. the BOS token "
               "(id {})",
               model.bos_token_id());
  MOXING_CHECK(context == 0 || P <= context,
               "generate: prompt is {} tokens; this model's context is {} tokens, so the prompt "
               "may be at most {}",
               P, context, context);
  check_ids(prompt, model.vocab_size(), "generate");
  MOXING_CHECK(cfg.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got {}",
               cfg.max_new_tokens);
  MOXING_CHECK(cfg.temperature >= 0.0, "generate: temperature must be >= 0, got {}",
               cfg.temperature);
  MOXING_CHECK(cfg.top_k >= 0, "generate: top_k must be >= 0, got {}", cfg.top_k);
  MOXING_CHECK(cfg.top_p > 0.0 && cfg.top_p <= 1.0, "generate: top_p must be in (0, 1], got {}",
               cfg.top_p);
  MOXING_CHECK(cfg.repetition_penalty > 0.0,
               "generate: repetition_penalty must be positive, got {}", cfg.repetition_penalty);
  std::vector<int32_t> out;
  if (cfg.max_new_tokens == 0) return out;

  EvalModeGuard eval_mode(model.module());
  NoGradGuard no_grad;
  Generator gen(cfg.seed);
  std::unique_ptr<KVCache> cache;
  if (cfg.use_cache) {
    // the last token chosen is never fed back, and nothing past the context is
    int64_t wanted = P + cfg.max_new_tokens - 1;
    int64_t capacity = std::max<int64_t>(1, context > 0 ? std::min(context, wanted) : wanted);
    cache = std::make_unique<KVCache>(model.make_cache(1, capacity));
  }
  std::vector<int32_t> seq = prompt;
  for (int64_t step = 0; step < cfg.max_new_tokens; ++step) {
    Tensor h;
    if (cache) {
      h = model.hidden_states(ids_tensor(seq, static_cast<size_t>(cache->length), seq.size()),
                              cache.get());
    } else {
      h = model.hidden_states(ids_tensor(seq, 0, seq.size()));
    }
    Tensor logits = model.lm_head(h.narrow(1, h.size(1) - 1, 1));  // (1,1,V)
    // one draw per step from the seed's stream, whether or not the cache is used
    std::array<uint32_t, 4> bits = gen.block(static_cast<uint64_t>(step));
    int32_t next = sample_next_token(logits.to_vector<float>(), seq, cfg,
                                     u64_to_unit_double(bits[0], bits[1]));
    seq.push_back(next);
    out.push_back(next);
    if (on_token && !on_token(next)) break;
    if (std::find(cfg.stop_token_ids.begin(), cfg.stop_token_ids.end(), next) !=
        cfg.stop_token_ids.end()) {
      break;
    }
    if (context > 0 && static_cast<int64_t>(seq.size()) > context) break;  // the context is full
  }
  return out;
}

PerplexityResult perplexity(CausalLM& model, const std::vector<int32_t>& ids, int64_t stride) {
  const auto N = static_cast<int64_t>(ids.size());
  // a model without a context limit scores the whole text in one window
  const int64_t window = model.context_length() > 0 ? model.context_length() : N;
  if (stride == 0) stride = window;
  MOXING_CHECK(N >= 2, "perplexity: needs at least 2 tokens, got {}", N);
  MOXING_CHECK(stride > 0 && stride <= window,
               "perplexity: stride must be in [1, n_positions = {}], got {}", window, stride);
  check_ids(ids, model.vocab_size(), "perplexity");
  EvalModeGuard eval_mode(model.module());
  NoGradGuard no_grad;
  double nll_sum = 0.0;
  int64_t count = 0, prev_end = 0;
  for (int64_t begin = 0; begin < N; begin += stride) {
    const int64_t end = std::min(begin + window, N), L = end - begin;
    // window index i (its token predicted from position i - 1) is scored when the previous
    // window did not score it
    const int64_t first = std::max<int64_t>(1, L - (end - prev_end));
    Tensor h = model.hidden_states(
        ids_tensor(ids, static_cast<size_t>(begin), static_cast<size_t>(end)));  // (1,L,C)
    Tensor logits = model.lm_head(h.narrow(1, first - 1, L - first)).reshape({L - first, -1});
    Tensor target = ids_tensor(ids, static_cast<size_t>(begin + first), static_cast<size_t>(end))
                        .reshape({L - first});
    for (double v : cross_entropy(logits, target, Reduction::none).to_vector<double>()) {
      nll_sum += v;
    }
    count += L - first;
    prev_end = end;
    if (end == N) break;
  }
  double loss = nll_sum / static_cast<double>(count);
  return {count, loss, std::exp(loss)};
}

}  // namespace moxing::models
