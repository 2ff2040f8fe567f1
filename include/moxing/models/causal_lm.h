// What a causal language model offers the tasks, generation and scoring, whatever its family:
// hidden states with an optional key/value cache, the head, its context and vocabulary.
// generate(), perplexity() and the causal-lm task take this interface, never a family's class.
#pragma once

#include <cstdint>
#include <vector>

#include "moxing/core/tensor.h"
#include "moxing/nn/module.h"

namespace moxing::models {

/// What a model keeps of the positions seen so far, so that each decoding step runs it on the
/// new positions only: attention layers' keys and values (k and v of layer l are
/// (B,NH,S_max,HS), NH the key/value heads, allocated once; positions [0, length) hold data),
/// or a recurrent model's states (state, e.g. an LSTM's h and c; empty before the first step).
struct KVCache {
  KVCache() = default;
  /// Empty cache of n_layer layers for batch sequences of up to capacity positions.
  KVCache(int64_t n_layer, int64_t batch, int64_t n_head, int64_t capacity, int64_t head_size,
          DType dtype = DType::f32);
  std::vector<Tensor> k, v;   // per layer (B,NH,S_max,HS)
  std::vector<Tensor> state;  // a recurrent model's states after the last position
  int64_t length = 0;
  int64_t capacity() const { return k.empty() ? 0 : k[0].size(2); }
  /// Forgets every position (the buffers are kept).
  void clear() {
    length = 0;
    state.clear();
  }
};

/// A causal language model: ids (B,T) -> next-token logits (B,T,V).
class CausalLM {
 public:
  virtual ~CausalLM() = default;
  /// The final hidden states (B,T,C). With a cache, ids are the positions that follow the
  /// cache's; their keys and values are appended and no graph is recorded.
  virtual Tensor hidden_states(const Tensor& ids, KVCache* cache = nullptr) = 0;
  /// h (..., C) -> logits (..., V).
  virtual Tensor lm_head(const Tensor& h) const = 0;
  /// Positions the model takes at once (n_positions, max_position_embeddings); 0 when there
  /// is no limit (a recurrent model): generation and scoring then never cut the text.
  virtual int64_t context_length() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t bos_token_id() const = 0;
  /// An empty cache for batch sequences of up to capacity positions (context_length() when 0),
  /// in the dtype of the model's weights (a recurrent model's cache has no capacity).
  virtual KVCache make_cache(int64_t batch = 1, int64_t capacity = 0) const = 0;
  /// The model as a module (train/eval mode, parameters).
  nn::Module& module() { return dynamic_cast<nn::Module&>(*this); }
};

}  // namespace moxing::models
