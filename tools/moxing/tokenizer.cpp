// `moxing tokenizer train|encode|decode`: learn a byte-level BPE, WordPiece or character vocab
// from text files, and turn text into ids and back with any tokenizer moxing loads
// (tokenizer.json, GPT-2 vocab.json + merges.txt, BERT vocab.txt).
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "command.h"
#include "moxing/core/error.h"
#include "moxing/tokenizers/bpe.h"
#include "moxing/tokenizers/char.h"
#include "moxing/tokenizers/utf8.h"
#include "moxing/tokenizers/wordpiece.h"

namespace moxing::tools {

namespace {

namespace tok = moxing::tokenizers;

std::string read_all(std::istream& in) {
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open the file", path);
  std::string s = read_all(f);
  tok::check_utf8(s, path);
  return s;
}

struct TrainArgs {
  std::string type = "bpe";
  int64_t vocab_size = -1;
  int64_t min_frequency = -1;
  std::vector<std::string> specials;
  bool cased = false;
  std::string out;
  std::vector<std::string> files;
};

int run_train(const TrainArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  // One text per line, newline kept: what HF's trainer reads from files.
  std::vector<std::string> texts;
  for (const auto& f : a.files) {
    std::string s = read_text_file(f);
    size_t start = 0;
    while (start < s.size()) {
      size_t nl = s.find('\n', start);
      size_t end = nl == std::string::npos ? s.size() : nl + 1;
      texts.push_back(s.substr(start, end - start));
      start = end;
    }
  }
  std::unique_ptr<tok::Tokenizer> t;
  if (a.type == "bpe") {
    tok::BpeTrainOptions o;
    if (a.vocab_size >= 0) o.vocab_size = a.vocab_size;
    if (a.min_frequency >= 0) o.min_frequency = a.min_frequency;
    if (!a.specials.empty()) o.special_tokens = a.specials;
    t = std::make_unique<tok::ByteLevelBPE>(tok::ByteLevelBPE::train(texts, o));
  } else if (a.type == "char") {
    tok::CharTrainOptions o;
    if (a.vocab_size >= 0) o.max_vocab = a.vocab_size;
    if (a.min_frequency >= 0) o.min_frequency = a.min_frequency;
    if (!a.specials.empty()) {
      o.special_tokens = a.specials;
      if (std::find(o.special_tokens.begin(), o.special_tokens.end(), "<unk>") ==
          o.special_tokens.end()) {
        o.special_tokens.push_back("<unk>");
      }
    }
    t = std::make_unique<tok::CharTokenizer>(tok::CharTokenizer::train(texts, o));
  } else if (a.type == "wordpiece") {
    tok::WordPieceTrainOptions o;
    if (a.vocab_size >= 0) o.vocab_size = a.vocab_size;
    if (a.min_frequency >= 0) o.min_frequency = a.min_frequency;
    if (!a.specials.empty()) o.special_tokens = a.specials;
    o.normalizer.lowercase = !a.cased;
    t = std::make_unique<tok::WordPieceTokenizer>(tok::WordPieceTokenizer::train(texts, o));
  } else {
    fail("tokenizer train: unknown --type '{}' (bpe, wordpiece or char)", a.type);
  }
  t->save(a.out);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << fmt::format("trained a {} tokenizer: vocab size {} in {:.2f} s, saved to {}\n",
                           a.type, t->vocab_size(), s, a.out);
  return 0;
}

int run_encode(const std::string& path, const std::string& text_opt, bool has_text,
               const std::string& file, bool json) {
  auto t = tok::load_tokenizer(path);
  std::string text;
  if (has_text) {
    text = text_opt;
  } else if (!file.empty()) {
    std::ifstream f(file, std::ios::binary);
    if (!f) fail("{}: cannot open the file", file);
    text = read_all(f);
    tok::check_utf8(text, file);
  } else {
    text = read_all(std::cin);
    tok::check_utf8(text, "stdin");
  }
  auto ids = t->encode(text);
  if (json) {
    std::cout << nlohmann::json{{"ids", ids}, {"tokens", ids.size()}}.dump() << "\n";
  } else {
    std::cout << fmt::format("{}\n", fmt::join(ids, " "));
  }
  return 0;
}

int run_decode(const std::string& path, const std::vector<int64_t>& ids64, bool skip, bool json) {
  auto t = tok::load_tokenizer(path);
  std::vector<int32_t> ids;
  for (int64_t id : ids64) {
    if (id < 0 || id >= t->vocab_size()) {
      fail("tokenizer decode: id {} is out of range [0, {})", id, t->vocab_size());
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  std::string text = t->decode(ids, skip);
  if (json) {
    std::cout << nlohmann::json{{"text", text}}.dump() << "\n";
  } else {
    std::cout << text << "\n";
  }
  return 0;
}

Command add_tokenizer_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenizer", "Train a tokenizer, encode text to ids, decode ids");
  cmd->require_subcommand(1);

  auto train_args = std::make_shared<TrainArgs>();
  auto* train = cmd->add_subcommand(
      "train", "Learn a byte-level BPE, WordPiece or character vocab from text");
  train->add_option("--type", train_args->type, "bpe (default), wordpiece or char")
      ->check(CLI::IsMember({"bpe", "wordpiece", "char"}));
  train->add_option(
      "--vocab-size", train_args->vocab_size,
      "Vocab size with special tokens (bpe default 8000; wordpiece 30000; char default: all)");
  train->add_option(
      "--min-frequency", train_args->min_frequency,
      "Least count of a merged pair (bpe 2, wordpiece 0) or kept character (char, 1)");
  train->add_option("--special", train_args->specials,
                    "A special token (repeatable; default <|endoftext|>, and <unk> for char; "
                    "[PAD] [UNK] [CLS] [SEP] [MASK] for wordpiece)");
  train->add_flag("--cased", train_args->cased, "wordpiece: keep case and accents (BERT cased)");
  train
      ->add_option("--out", train_args->out,
                   "Folder to write tokenizer.json (and vocab.json + merges.txt, or "
                   "vocab.txt) to")
      ->required();
  train->add_option("FILES", train_args->files, "UTF-8 text files")->required();

  struct EncodeArgs {
    std::string tokenizer, text, file;
    bool json = false;
  };
  auto enc = std::make_shared<EncodeArgs>();
  auto* encode = cmd->add_subcommand("encode", "Print the ids of a text (--text, FILE or stdin)");
  encode
      ->add_option("TOKENIZER", enc->tokenizer,
                   "tokenizer.json, or a folder with it or with "
                   "vocab.json + merges.txt or vocab.txt")
      ->required();
  auto* text_opt = encode->add_option("--text", enc->text, "The text to encode");
  encode->add_option("FILE", enc->file, "A UTF-8 text file to encode (default: stdin)");
  encode->add_flag("--json", enc->json, "Print {\"ids\": [...], \"tokens\": n}");

  struct DecodeArgs {
    std::string tokenizer;
    std::vector<int64_t> ids;
    bool skip = false, json = false;
  };
  auto dec = std::make_shared<DecodeArgs>();
  auto* decode = cmd->add_subcommand("decode", "Print the text of ids");
  decode->add_option("TOKENIZER", dec->tokenizer, "tokenizer.json, or a folder with it")
      ->required();
  decode->add_option("IDS", dec->ids, "Token ids")->required();
  decode->add_flag("--skip-special", dec->skip, "Leave special tokens out");
  decode->add_flag("--json", dec->json, "Print {\"text\": ...}");

  return {cmd, [=]() -> int {
            if (train->parsed()) return run_train(*train_args);
            if (encode->parsed()) {
              return run_encode(enc->tokenizer, enc->text, text_opt->count() > 0, enc->file,
                                enc->json);
            }
            return run_decode(dec->tokenizer, dec->ids, dec->skip, dec->json);
          }};
}

}  // namespace

MOXING_CLI_COMMAND(add_tokenizer_command);

}  // namespace moxing::tools
