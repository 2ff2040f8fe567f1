// What an encoder-decoder (sequence-to-sequence) model offers the translate task and decoding,
// whatever its family: the encoder, the decoder under teacher forcing, and the decoder one step
// at a time over a cache that holds the memory's cross-attention keys and values (computed
// once) and the decoder's own self-attention keys and values. decode_sequences() and the
// translate task take this interface, never a family's class.
#pragma once

#include <cstdint>
#include <vector>

#include "moxing/core/tensor.h"
#include "moxing/models/causal_lm.h"
#include "moxing/nn/module.h"

namespace moxing::models {

/// The state of decoding B sequences: per decoder layer, the memory's keys and values for
/// cross-attention (B,NH,S,HS), the memory's padding mask, and the self-attention cache.
struct Seq2SeqCache {
  std::vector<Tensor> cross_k, cross_v;  // per layer (B,NH,S,HS)
  Tensor memory_mask;                    // (B,1,1,S) bool, true = attend; undefined: all
  KVCache self;                          // (B,NH,T_max,HS) per layer
  /// Keeps the rows index (i64 (B')) of every tensor, in that order (beam search's reordering
  /// and repetition of a sentence's state for its beams). The self-attention length is kept.
  void select_rows(const Tensor& index);
};

/// An encoder-decoder model: source ids (B,S) -> memory (B,S,C); target ids (B,T) over the
/// memory -> next-token logits (B,T,V).
class Seq2SeqLM {
 public:
  virtual ~Seq2SeqLM() = default;
  /// src_ids (B,S); src_mask (B,S) integer or bool, nonzero at real tokens (undefined: all
  /// real) -> memory (B,S,C). Records the graph for training.
  virtual Tensor encode(const Tensor& src_ids, const Tensor& src_mask = Tensor()) = 0;
  /// Teacher forcing: tgt_ids (B,T) (decoder_start_token_id, then the target shifted right)
  /// attend causally to themselves and to the memory's real positions -> the decoder's final
  /// states (B,T,C).
  virtual Tensor decoder_states(const Tensor& tgt_ids, const Tensor& memory,
                                const Tensor& src_mask = Tensor()) = 0;
  /// h (..., C) -> next-token logits (..., V). A loss that needs the logits of some positions
  /// only (not the padding) runs the head on those rows alone.
  virtual Tensor lm_head(const Tensor& h) = 0;
  /// lm_head(decoder_states(...)): logits (B,T,V).
  Tensor decode(const Tensor& tgt_ids, const Tensor& memory, const Tensor& src_mask = Tensor()) {
    return lm_head(decoder_states(tgt_ids, memory, src_mask));
  }
  /// A cache for decoding over memory (B,S,C): the cross-attention keys and values are
  /// computed here once; room for capacity decoder positions (max_positions() when 0).
  virtual Seq2SeqCache make_cache(const Tensor& memory, const Tensor& src_mask = Tensor(),
                                  int64_t capacity = 0) = 0;
  /// ids (B,T): the decoder positions that follow the cache's -> their logits (B,T,V); their
  /// keys and values are appended. Records no graph.
  virtual Tensor decode_step(const Tensor& ids, Seq2SeqCache& cache) = 0;

  /// Positions the encoder and the decoder each take (max_position_embeddings).
  virtual int64_t max_positions() const = 0;
  virtual int64_t source_vocab_size() const = 0;
  virtual int64_t target_vocab_size() const = 0;
  virtual int64_t decoder_start_token_id() const = 0;
  virtual int64_t eos_token_id() const = 0;
  virtual int64_t pad_token_id() const = 0;
  /// The model as a module (train/eval mode, parameters).
  nn::Module& module() { return dynamic_cast<nn::Module&>(*this); }
};

}  // namespace moxing::models
