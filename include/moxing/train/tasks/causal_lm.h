// The "causal-lm" task: text files ([data] name "text") turned into token files, random windows
// of the model's context for training, next-token cross-entropy, and validation loss,
// perplexity and accuracy against the unigram baseline. Any family whose module is a
// models::CausalLM trains with it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "moxing/io/token_file.h"
#include "moxing/models/causal_lm.h"
#include "moxing/models/family.h"
#include "moxing/tokenizers/tokenizer.h"

namespace moxing::train {

/// Mean next-token loss (nats) and accuracy over consecutive windows of the model's context,
/// batch windows at a time, in eval mode without gradients. The last partial window is
/// skipped.
struct LMEvalResult {
  double loss = 0;
  double accuracy = 0;
  int64_t tokens = 0;
};
LMEvalResult evaluate_lm(models::CausalLM& model, const TokenFile& tokens, int64_t batch);

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
