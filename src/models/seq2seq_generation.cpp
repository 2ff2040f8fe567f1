// Greedy and beam-search decoding over Seq2SeqLM. Beam bookkeeping lives on the host per
// sentence and follows transformers' _beam_search step by step (top 2 * num_beams candidates over
// all beams, the first num_beams of them may finish, the next running beams are the best
// unfinished ones); the model runs on every live row of the batch at once.
#include "moxing/models/seq2seq_generation.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"
#include "moxing/ops/softmax.h"

namespace moxing::models {

namespace {

constexpr float kNegInf = -1.0e9f;  // transformers' "very large negative" score

// The decoder's state for the live rows: with the cache, the cache; without, the memory, its mask
// and every row's tokens so far (the whole prefix is run again each step).
class DecoderRows {
 public:
  DecoderRows(Seq2SeqLM& model, const Tensor& memory, const Tensor& mask, int64_t capacity,
              bool use_cache, int64_t start)
      : model_(model), memory_(memory), mask_(mask), use_cache_(use_cache) {
    if (use_cache_) cache_ = model.make_cache(memory, mask, capacity);
    tokens_.assign(static_cast<size_t>(memory.size(0)), std::vector<int64_t>{start});
  }

  // next-token log-probabilities (R,V) f32 after each row's last token
  Tensor step() {
    const auto R = static_cast<int64_t>(tokens_.size());
    Tensor logits;
    if (use_cache_) {
      std::vector<int64_t> last;
      for (const auto& t : tokens_) last.push_back(t.back());
      logits = model_.decode_step(from_vector(last, {R, 1}), cache_);  // (R,1,V)
    } else {
      const auto T = static_cast<int64_t>(tokens_[0].size());
      std::vector<int64_t> all;
      for (const auto& t : tokens_) all.insert(all.end(), t.begin(), t.end());
      logits = model_.decode(from_vector(all, {R, T}), memory_, mask_).narrow(1, T - 1, 1);
    }
    return log_softmax(logits.select(1, 0).to(DType::f32), 1).contiguous();
  }

  // keeps rows `rows` (in that order) and appends next[i] to new row i
  void advance(const std::vector<int64_t>& rows, const std::vector<int64_t>& next) {
    std::vector<std::vector<int64_t>> t;
    for (size_t i = 0; i < rows.size(); ++i) {
      t.push_back(tokens_[static_cast<size_t>(rows[i])]);
      t.back().push_back(next[i]);
    }
    tokens_ = std::move(t);
    bool same = rows.size() == static_cast<size_t>(memory_.size(0));
    for (size_t i = 0; same && i < rows.size(); ++i) same = rows[i] == static_cast<int64_t>(i);
    if (same || rows.empty()) return;
    Tensor index = from_vector(rows, {static_cast<int64_t>(rows.size())});
    if (use_cache_) {
      cache_.select_rows(index);
    }
    memory_ = index_select(memory_, 0, index);
    if (mask_.defined()) mask_ = index_select(mask_, 0, index);
  }

 private:
  Seq2SeqLM& model_;
  Tensor memory_, mask_;
  bool use_cache_;
  Seq2SeqCache cache_;
  std::vector<std::vector<int64_t>> tokens_;
};

struct Hypothesis {
  float score;
  std::vector<int32_t> tokens;  // generated, eos included when it ended with one
};

// One sentence's beams.
struct BeamState {
  std::vector<float> running_scores;          // (nb), best first
  std::vector<std::vector<int32_t>> running;  // (nb) generated tokens
  std::vector<Hypothesis> finished;           // at most nb, best first
  bool improvable = true;                     // transformers' is_early_stop_heuristic_unsatisfied
  bool done = false;
};

// the best n entries of scores (descending, ties to the lower index, as a stable sort)
std::vector<int64_t> top_indices(const std::vector<float>& scores, int64_t n) {
  std::vector<int64_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  n = std::min<int64_t>(n, static_cast<int64_t>(idx.size()));
  std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), [&](int64_t a, int64_t b) {
    const float sa = scores[static_cast<size_t>(a)], sb = scores[static_cast<size_t>(b)];
    return sa > sb || (sa == sb && a < b);
  });
  idx.resize(static_cast<size_t>(n));
  return idx;
}

std::vector<int32_t> strip_eos(std::vector<int32_t> t, int64_t eos) {
  if (!t.empty() && t.back() == eos) t.pop_back();
  return t;
}

void decode_batch(Seq2SeqLM& model, const std::vector<const std::vector<int32_t>*>& sources,
                  const Seq2SeqDecoding& o, int64_t max_new,
                  std::vector<std::vector<int32_t>*>& out) {
  const auto B = static_cast<int64_t>(sources.size());
  const int64_t nb = o.num_beams;
  const int64_t eos = model.eos_token_id(), pad = model.pad_token_id();
  int64_t S = 0;
  for (const auto* s : sources) S = std::max<int64_t>(S, static_cast<int64_t>(s->size()));
  std::vector<int64_t> ids(static_cast<size_t>(B * S), pad), mask(static_cast<size_t>(B * S), 0);
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = *sources[static_cast<size_t>(b)];
    for (size_t t = 0; t < s.size(); ++t) {
      ids[static_cast<size_t>(b * S) + t] = s[t];
      mask[static_cast<size_t>(b * S) + t] = 1;
    }
  }
  Tensor src_mask = from_vector(mask, {B, S});
  Tensor memory = model.encode(from_vector(ids, {B, S}), src_mask);
  if (nb > 1) {  // each sentence's memory once per beam
    std::vector<int64_t> rep;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < nb; ++i) rep.push_back(b);
    Tensor index = from_vector(rep, {B * nb});
    memory = index_select(memory, 0, index);
    src_mask = index_select(src_mask, 0, index);
  }
  DecoderRows rows(model, memory, src_mask, max_new, o.use_cache, model.decoder_start_token_id());

  if (nb == 1) {
    std::vector<int64_t> live(static_cast<size_t>(B));  // sentence of each row
    std::iota(live.begin(), live.end(), 0);
    for (int64_t step = 0; step < max_new && !live.empty(); ++step) {
      Tensor next = argmax(rows.step(), 1).contiguous();
      const int64_t* n = next.data<int64_t>();
      std::vector<int64_t> keep, tokens, still;
      for (size_t r = 0; r < live.size(); ++r) {
        auto& o_tokens = *out[static_cast<size_t>(live[r])];
        if (n[r] == eos) continue;
        o_tokens.push_back(static_cast<int32_t>(n[r]));
        keep.push_back(static_cast<int64_t>(r));
        tokens.push_back(n[r]);
        still.push_back(live[r]);
      }
      live = std::move(still);
      if (step + 1 < max_new && !live.empty()) rows.advance(keep, tokens);
    }
    return;
  }

  const int64_t V = model.target_vocab_size();
  const int64_t K = 2 * nb;
  std::vector<BeamState> beams(static_cast<size_t>(B));
  for (auto& s : beams) {
    s.running_scores.assign(static_cast<size_t>(nb), kNegInf);
    s.running_scores[0] = 0.0f;  // only the first beam's tokens count at the first step
    s.running.assign(static_cast<size_t>(nb), {});
  }
  std::vector<int64_t> live(static_cast<size_t>(B));  // sentences whose rows are in the batch
  std::iota(live.begin(), live.end(), 0);
  std::vector<float> cand(static_cast<size_t>(nb * V));
  for (int64_t step = 0; step < max_new && !live.empty(); ++step) {
    Tensor logp = rows.step();  // (live * nb, V)
    const float* lp = logp.data<float>();
    const int64_t generated = step + 1;  // tokens of each candidate
    const bool at_max = generated >= max_new;
    std::vector<int64_t> keep_rows, next_tokens, still;
    for (size_t li = 0; li < live.size(); ++li) {
      BeamState& s = beams[static_cast<size_t>(live[li])];
      for (int64_t i = 0; i < nb; ++i) {
        const float* row = lp + (static_cast<int64_t>(li) * nb + i) * V;
        for (int64_t v = 0; v < V; ++v)
          cand[static_cast<size_t>(i * V + v)] = row[v] + s.running_scores[static_cast<size_t>(i)];
      }
      std::vector<int64_t> top = top_indices(cand, K);
      std::vector<float> top_scores, adjusted;
      std::vector<char> hits;
      for (int64_t c : top) {
        const float score = cand[static_cast<size_t>(c)];
        const bool hit = c % V == eos || at_max;
        top_scores.push_back(score);
        hits.push_back(hit);
        adjusted.push_back(hit ? score + kNegInf : score);
      }
      // the first num_beams candidates that finished may enter the finished list
      const bool full = static_cast<int64_t>(s.finished.size()) == nb;
      if (s.improvable && !(full && o.early_stopping)) {
        for (int64_t k = 0; k < nb; ++k) {
          if (!hits[static_cast<size_t>(k)]) continue;
          const int64_t c = top[static_cast<size_t>(k)];
          Hypothesis h;
          h.score = static_cast<float>(top_scores[static_cast<size_t>(k)] /
                                       std::pow(static_cast<double>(generated), o.length_penalty));
          h.tokens = s.running[static_cast<size_t>(c / V)];
          h.tokens.push_back(static_cast<int32_t>(c % V));
          auto at = std::find_if(s.finished.begin(), s.finished.end(),
                                 [&](const Hypothesis& f) { return h.score > f.score; });
          s.finished.insert(at, std::move(h));
          if (static_cast<int64_t>(s.finished.size()) > nb) s.finished.pop_back();
        }
      }
      // the best unfinished candidates run on
      std::vector<int64_t> next = top_indices(adjusted, nb);
      std::vector<std::vector<int32_t>> running;
      for (size_t j = 0; j < next.size(); ++j) {
        const int64_t c = top[static_cast<size_t>(next[j])];
        s.running_scores[j] = adjusted[static_cast<size_t>(next[j])];
        running.push_back(s.running[static_cast<size_t>(c / V)]);
        running.back().push_back(static_cast<int32_t>(c % V));
        keep_rows.push_back(static_cast<int64_t>(li) * nb + c / V);
        next_tokens.push_back(c % V);
      }
      s.running = std::move(running);
      // can a running beam still beat the worst finished one?
      if (static_cast<int64_t>(s.finished.size()) == nb) {
        const float best = static_cast<float>(
            s.running_scores[0] / std::pow(static_cast<double>(generated), o.length_penalty));
        s.improvable = s.improvable && best > s.finished.back().score;
      }
      const bool all_finished = static_cast<int64_t>(s.finished.size()) == nb;
      s.done = at_max || !s.improvable || (all_finished && o.early_stopping);
      if (s.done) {
        for (size_t j = 0; j < next.size(); ++j) {
          keep_rows.pop_back();
          next_tokens.pop_back();
        }
      } else {
        still.push_back(live[li]);
      }
    }
    live = std::move(still);
    if (!live.empty()) rows.advance(keep_rows, next_tokens);
  }
  for (int64_t b = 0; b < B; ++b) {
    BeamState& s = beams[static_cast<size_t>(b)];
    MOXING_CHECK(!s.finished.empty(), "beam search: sentence {} ended with no hypothesis", b);
    *out[static_cast<size_t>(b)] = strip_eos(s.finished.front().tokens, eos);
  }
}

}  // namespace

std::vector<std::vector<int32_t>> decode_sequences(Seq2SeqLM& model,
                                                   const std::vector<std::vector<int32_t>>& sources,
                                                   const Seq2SeqDecoding& o) {
  const int64_t V = model.target_vocab_size();
  MOXING_CHECK(o.num_beams >= 1, "decode: num_beams must be at least 1, got {}", o.num_beams);
  MOXING_CHECK(o.num_beams <= V,
               "decode: {} beams are more than the target vocabulary of {} tokens", o.num_beams, V);
  MOXING_CHECK(o.max_new_tokens >= 1, "decode: max_new_tokens must be at least 1, got {}",
               o.max_new_tokens);
  MOXING_CHECK(o.batch_size >= 1, "decode: batch_size must be at least 1, got {}", o.batch_size);
  for (size_t i = 0; i < sources.size(); ++i) {
    MOXING_CHECK(!sources[i].empty(), "decode: source {} is empty", i);
    MOXING_CHECK(static_cast<int64_t>(sources[i].size()) <= model.max_positions(),
                 "decode: source {} has {} tokens, more than the model's {} positions", i,
                 sources[i].size(), model.max_positions());
  }
  const int64_t max_new = std::min(o.max_new_tokens, model.max_positions());
  nn::Module& module = model.module();
  const bool was_training = module.is_training();
  module.eval();
  NoGradGuard no_grad;
  std::vector<std::vector<int32_t>> out(sources.size());
  // longest first, so that a batch pads little
  std::vector<size_t> order(sources.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sources[a].size() > sources[b].size(); });
  try {
    for (size_t first = 0; first < order.size(); first += static_cast<size_t>(o.batch_size)) {
      const size_t last = std::min(order.size(), first + static_cast<size_t>(o.batch_size));
      std::vector<const std::vector<int32_t>*> batch;
      std::vector<std::vector<int32_t>*> results;
      for (size_t i = first; i < last; ++i) {
        batch.push_back(&sources[order[i]]);
        results.push_back(&out[order[i]]);
      }
      decode_batch(model, batch, o, max_new, results);
    }
  } catch (...) {
    module.train(was_training);
    throw;
  }
  module.train(was_training);
  return out;
}

}  // namespace moxing::models
