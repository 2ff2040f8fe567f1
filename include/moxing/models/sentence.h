// Sentence embeddings as sentence-transformers computes them: a folder with modules.json
// (Transformer, Pooling, optional Normalize), 1_Pooling/config.json (the pooling mode, in the
// older boolean form or the newer "pooling_mode" string) and the window (max_seq_length from
// sentence_bert_config.json, else the tokenizer's model_max_length). Text longer than the
// window is cut to it silently, as sentence-transformers does. Any text encoder family works.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "moxing/models/encoder.h"
#include "moxing/models/family.h"
#include "moxing/tokenizers/wordpiece.h"

namespace moxing::models {

struct SentenceEncoderOptions {
  /// "mean", "cls" or "max"; unset: the folder's (mean when it has no Pooling module).
  std::optional<std::string> pooling = std::nullopt;
  /// Unit-length vectors; unset: when modules.json has a Normalize module.
  std::optional<bool> normalize = std::nullopt;
  /// Texts per forward.
  int64_t batch_size = 32;
};

class SentenceEncoder {
 public:
  /// Loads a sentence-transformers folder, or a plain model folder (mean pooling, no
  /// normalization, the model's positions as the window). Errors name the file and the fix.
  static SentenceEncoder load(const std::string& dir, const SentenceEncoderOptions& options = {});
  /// (N, C) f32 vectors of texts, in order (run longest first in batches of batch_size, so
  /// that a batch pads little). Empty text is an error naming its index.
  Tensor embed(const std::vector<std::string>& texts) const;

  std::string pooling = "mean";
  bool normalize = false;
  int64_t max_seq_length = 512;
  int64_t batch_size = 32;
  Model model;
  std::shared_ptr<tokenizers::WordPieceTokenizer> tokenizer;
};

}  // namespace moxing::models
