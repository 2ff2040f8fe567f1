// Text generation and perplexity for any causal language model: Hugging Face's sampling pipeline
// (repetition penalty, temperature, top-k, top-p) with a seeded Philox stream, and the strided
// sliding-window perplexity of the transformers guide. Token ids in, token ids out: no
// tokenizer here.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "moxing/models/causal_lm.h"

namespace moxing::models {

/// How generate() picks each token; the defaults sample from the model's distribution.
struct SamplingConfig {
  int64_t max_new_tokens = 64;
  double temperature = 1.0;  // 0 means greedy
  int64_t top_k = 0;         // 0: no top-k filter
  double top_p = 1.0;        // 1: no nucleus filter
  double repetition_penalty = 1.0;
  bool greedy = false;
  uint64_t seed = 0;
  bool use_cache = true;
  std::vector<int32_t> stop_token_ids;  // generation stops after emitting one of these
};

/// Continues prompt (at least one token: pass a BOS token to start from nothing) with up to
/// max_new_tokens tokens, stopping early at a stop token or at the end of the model's context.
/// Calls on_token(id) for each new token as soon as it is chosen; on_token returning false
/// stops. Returns the new ids. Runs in eval mode under NoGradGuard (the mode is restored).
/// The same seed gives the same tokens with and without the cache.
std::vector<int32_t> generate(CausalLM& model, const std::vector<int32_t>& prompt,
                              const SamplingConfig& cfg,
                              const std::function<bool(int32_t)>& on_token = {});

/// Picks the next token from one row of logits (V) as generate() does: repetition penalty
/// over `seen`, then greedy argmax, or temperature, top-k, top-p and a draw at uniform u in
/// [0, 1). Matches the logits processors of transformers' generate().
int32_t sample_next_token(std::vector<float> logits, const std::vector<int32_t>& seen,
                          const SamplingConfig& cfg, double u);

struct PerplexityResult {
  int64_t tokens;     // tokens scored
  double loss;        // mean negative log-likelihood per scored token (nats)
  double perplexity;  // exp(loss)
};

/// The transformers guide's strided sliding-window perplexity: windows of n_positions tokens
/// starting every `stride` tokens (0: stride = n_positions), each scoring only the tokens the
/// previous window did not, so that each scored token sees at least n_positions - stride
/// earlier tokens (all of them near the start). The first token of a window that scores all of it
/// has no context and is not scored (with stride < n_positions that is only the first token of
/// ids). The mean is over all scored tokens (the guide weights each window's mean by its token
/// count minus one, an approximation not copied here). Runs in eval mode under NoGradGuard.
PerplexityResult perplexity(CausalLM& model, const std::vector<int32_t>& ids, int64_t stride = 0);

}  // namespace moxing::models
