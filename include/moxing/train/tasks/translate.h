// The "translate" task: sentence pairs from CSV tables ([data] name "csv", a source and a target
// column), one byte-level BPE trained on both sides (shared vocabulary) or a tokenizer folder, or
// separate source and target tokenizers ([data] target_tokenizer: the model then gets separate
// embedding tables), any models::Seq2SeqLM (marian's MarianMTModel), teacher forcing with
// padding masks and label-smoothed cross-entropy, validation loss plus BLEU / chrF / exact match
// of greedy decodes of a validation subset, and test BLEU / chrF / exact match of beam-search
// decodes at the end and in `moxing eval`. A separate target tokenizer is saved in the
// checkpoint's target_tokenizer/ folder.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moxing/models/seq2seq.h"
#include "moxing/models/seq2seq_generation.h"
#include "moxing/tokenizers/tokenizer.h"
#include "moxing/train/task.h"

namespace moxing::train {

/// The [data] keys of the translate task. path is a folder with train.csv and optionally
/// validation.csv (or val.csv, dev.csv) and test.csv (or .tsv).
struct TranslationDataOptions {
  std::string source_column = "source";
  std::string target_column = "target";
  /// "bpe": a byte-level BPE trained on both sides of the training pairs, with </s> (0), <unk>
  /// and <pad>; else a tokenizer folder (it needs an end token, </s> or <|endoftext|>)
  std::string tokenizer = "bpe";
  /// "": the target side uses `tokenizer` (one shared vocabulary); "bpe": a byte-level BPE
  /// trained on the targets alone (and a "bpe" tokenizer then on the sources alone); else a
  /// tokenizer folder. Both sides must give </s> and <pad> the same ids.
  std::string target_tokenizer;
  /// the size of a trained BPE (256 bytes + merges + 3 special tokens)
  int64_t vocab_size = 8000;
  /// the size of a trained target BPE (0: vocab_size)
  int64_t target_vocab_size = 0;
  /// tokens per sentence, eos included (0: the model's max_position_embeddings)
  int64_t max_length = 0;
  /// cut longer sentences, saying how many once per split (false: an error naming the line)
  bool truncate = true;
  /// cross-entropy label smoothing of the training loss
  double label_smoothing = 0.1;
  /// validation sentences decoded greedily for BLEU / chrF / exact match (0: none)
  int64_t val_decode_sentences = 200;
  /// beam size and length penalty of the test decodes and `moxing eval`
  int64_t num_beams = 4;
  double length_penalty = 1.0;
  /// most generated tokens per sentence (0: max_length)
  int64_t max_new_tokens = 0;

  template <class F>
  void visit(F&& f) {
    f("source_column", source_column);
    f("target_column", target_column);
    f("tokenizer", tokenizer);
    f("target_tokenizer", target_tokenizer);
    f("vocab_size", vocab_size);
    f("target_vocab_size", target_vocab_size);
    f("max_length", max_length);
    f("truncate", truncate);
    f("label_smoothing", label_smoothing);
    f("val_decode_sentences", val_decode_sentences);
    f("num_beams", num_beams);
    f("length_penalty", length_penalty);
    f("max_new_tokens", max_new_tokens);
  }
};

/// One split of sentence pairs, with their ids once encoded.
struct TranslationPairs {
  std::string path;
  std::vector<std::string> sources, targets;
  std::vector<int64_t> lines;                          // the line of each pair in path
  std::vector<std::vector<int32_t>> src_ids, tgt_ids;  // each ends with eos
  int64_t truncated = 0;                               // pairs cut by encode()

  int64_t size() const { return static_cast<int64_t>(sources.size()); }
  /// Encodes both sides (tokens + eos), the targets with target; with cut false a side longer
  /// than max_length is an error naming the file and line.
  void encode(const tokenizers::Tokenizer& source, const tokenizers::Tokenizer& target, int32_t eos,
              int64_t max_length, bool cut);
};

/// The ids of text as a source sentence: its tokens and eos, cut to max_length (0: no limit);
/// *truncated is set when it had to be cut.
std::vector<int32_t> encode_sentence(const tokenizers::Tokenizer& tokenizer,
                                     const std::string& text, int32_t eos, int64_t max_length,
                                     bool* truncated = nullptr);

/// Decoded translations of hypotheses against references: BLEU and chrF (sacreBLEU's), the
/// share of exact matches (whitespace at the ends ignored).
Metrics translation_scores(const std::vector<std::string>& hypotheses,
                           const std::vector<std::string>& references);

/// The tokenizers of a checkpoint folder: its own (the source side's) and, when the folder has
/// target_tokenizer/, the target side's (else the same one).
struct TranslationTokenizers {
  std::shared_ptr<tokenizers::Tokenizer> source, target;
};
TranslationTokenizers load_translation_tokenizers(const std::string& dir);

/// A translation model loaded from a run, checkpoint or model folder with its tokenizers.
struct LoadedTranslator {
  LoadedRun run;
  models::Seq2SeqLM* model = nullptr;
  std::shared_ptr<tokenizers::Tokenizer> tokenizer;         // the source side's
  std::shared_ptr<tokenizers::Tokenizer> target_tokenizer;  // the same one when shared
  int32_t eos = 0;
};
LoadedTranslator load_translator(const std::string& path);

/// Translates texts (each tokenized as a source sentence and cut to the model's positions) and
/// returns the decoded translations.
std::vector<std::string> translate_texts(const LoadedTranslator& t,
                                         const std::vector<std::string>& texts,
                                         const models::Seq2SeqDecoding& options);

}  // namespace moxing::train
