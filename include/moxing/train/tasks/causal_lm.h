// The "causal-lm" task: text files ([data] name "text") turned into token files, random windows
// of the model's context (or of [data] max_length tokens) for training, next-token cross-entropy,
// and validation loss, perplexity and accuracy against the unigram baseline. Any family whose
// module is a models::CausalLM trains with it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "moxing/io/token_file.h"
#include "moxing/models/causal_lm.h"
#include "moxing/models/family.h"
#include "moxing/tokenizers/tokenizer.h"
#include "moxing/train/lm_data.h"

namespace moxing::train {

/// The [data] keys of "text" for causal-LM training: the text source's, and the window.
struct CausalTextOptions : TextDataOptions {
  /// tokens per training and validation window (0: the model's context, which a model without
  /// a context limit, such as an LSTM, cannot leave to it)
  int64_t max_length = 0;

  template <class F>
  void visit(F&& f) {
    TextDataOptions::visit(f);
    f("max_length", max_length);
  }
};

/// The window of a causal-LM run: max_length when set (at most the model's context), else
/// the model's context; an error when neither gives one.
int64_t lm_window(const models::CausalLM& model, int64_t max_length);

/// Mean next-token loss (nats) and accuracy over consecutive windows of `window` tokens,
/// batch windows at a time, in eval mode without gradients. The last partial window is
/// skipped.
struct LMEvalResult {
  double loss = 0;
  double accuracy = 0;
  int64_t tokens = 0;
};
LMEvalResult evaluate_lm(models::CausalLM& model, const TokenFile& tokens, int64_t batch,
                         int64_t window);

/// A trained language model: its folder, model and tokenizer.
struct LoadedLM {
  std::string dir;
  models::Model model;
  models::CausalLM* lm = nullptr;  ///< model.module as a causal LM
  std::shared_ptr<tokenizers::Tokenizer> tokenizer;
};
/// path: a model folder (config.json + model.safetensors + tokenizer files) or a `moxing train`
/// run folder (its final/, else best/, else latest checkpoint). The model is in eval mode; a
/// model that is not a causal language model is an error naming its family.
LoadedLM load_language_model(const std::string& path);

}  // namespace moxing::train
