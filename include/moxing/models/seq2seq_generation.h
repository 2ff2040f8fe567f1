// Decoding for any encoder-decoder model: greedy and beam search over a batch of sentences, as
// Hugging Face's generate() does them (beam scores are summed log-probabilities; a finished
// hypothesis scores sum / generated_length^length_penalty; the same stopping rules, early_stopping
// true or false). The encoder runs once per batch, the cross-attention keys and values are
// computed once, and each step runs the decoder on the new position only (or, without the
// cache, on the whole prefix: the reference the cache is tested against). Token ids in, token
// ids out: no tokenizer here. Not sampling, not forced or banned tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "moxing/models/seq2seq.h"

namespace moxing::models {

/// How decode_sequences() searches.
struct Seq2SeqDecoding {
  /// 1: greedy; more: beam search with this many beams per sentence.
  int64_t num_beams = 1;
  /// A finished beam scores sum(log p) / generated_length^length_penalty (transformers' rule):
  /// above 0 favours longer translations.
  double length_penalty = 1.0;
  /// Most tokens generated after the decoder start token, eos included (capped at the model's
  /// max_positions()).
  int64_t max_new_tokens = 128;
  /// true: a sentence stops as soon as num_beams hypotheses have finished; false:
  /// transformers' heuristic (stop when no running beam can beat the worst finished one).
  bool early_stopping = false;
  /// false: recompute the decoder over the whole prefix at each step (slow; for checking).
  bool use_cache = true;
  /// Sentences encoded and decoded together.
  int64_t batch_size = 32;
};

/// Translates each source (ids as the model's tokenizer gives them, eos included) and returns
/// the generated ids of each, without the decoder start token and without the final eos. Runs
/// in eval mode under NoGradGuard (the mode is restored). Errors: an empty source, a source
/// longer than max_positions(), num_beams < 1 or larger than the target vocabulary.
std::vector<std::vector<int32_t>> decode_sequences(Seq2SeqLM& model,
                                                   const std::vector<std::vector<int32_t>>& sources,
                                                   const Seq2SeqDecoding& options = {});

}  // namespace moxing::models
