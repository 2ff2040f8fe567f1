// The language-model loop behind `moxing train` with [model] name "gpt": random windows of the
// training token file, AdamW (no weight decay on biases and norms), warmup and decay, clipping
// and accumulation, validation loss against the unigram baseline, logs and checkpoints that are
// Hugging Face model folders (config.json, model.safetensors, tokenizer files) plus the
// optimizer and trainer state, so a resumed run repeats the losses of an uninterrupted one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "moxing/io/token_file.h"
#include "moxing/models/gpt.h"
#include "moxing/tokenizers/tokenizer.h"
#include "moxing/train/config.h"
#include "moxing/train/trainer.h"

namespace moxing::train {

/// The GPT-2 config a [model] section describes, for a vocabulary of vocab_size tokens.
models::GPTConfig gpt_config(const ModelConfig& model, int64_t vocab_size, int32_t eos_id);

/// Trains a GPT as the config says ([data] name "text") into options.out_dir: data/ (tokenizer
/// and token files), checkpoints/step-N/, best/ (lowest val loss), final/, metrics.jsonl,
/// TensorBoard events and curves.png. One epoch is as many steps as it takes to see as many
/// tokens as the training split holds. Non-finite losses are handled as in fit().
TrainSummary fit_lm(const Config& config, const TrainOptions& options);

/// Mean next-token loss (nats) and accuracy over consecutive windows of n_positions tokens,
/// batch windows at a time, in eval mode without gradients. The last partial window is
/// skipped.
struct LMEvalResult {
  double loss = 0;
  double accuracy = 0;
  int64_t tokens = 0;
};
LMEvalResult evaluate_lm(models::GPT& model, const TokenFile& tokens, int64_t batch);

/// A trained language model: its folder, model and tokenizer.
struct LoadedLM {
  std::string dir;
  std::shared_ptr<models::GPT> model;
  std::shared_ptr<tokenizers::Tokenizer> tokenizer;
};
/// path: a model folder (config.json + model.safetensors + tokenizer files) or a `moxing train`
/// run folder (its final/, else best/, else latest checkpoint). The model is in eval mode.
LoadedLM load_language_model(const std::string& path);

}  // namespace moxing::train
