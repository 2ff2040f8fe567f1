// Language-model data: documents from text files, the split, the tokenizer, token files and
// window sampling.
#include "moxing/train/lm_data.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "moxing/core/error.h"
#include "moxing/core/rng.h"
#include "moxing/data/csv.h"
#include "moxing/data/dataset.h"
#include "moxing/io/checkpoint.h"
#include "moxing/tokenizers/bpe.h"
#include "moxing/tokenizers/char.h"
#include "moxing/tokenizers/utf8.h"
#include "moxing/tokenizers/wordpiece.h"

namespace moxing::train {

namespace fs = std::filesystem;

std::string strip_terminal_codes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\b') {  // overstrike "_\bx" (underline) or "x\bx" (bold): keep the last
      while (!out.empty() && (static_cast<uint8_t>(out.back()) & 0xC0) == 0x80) out.pop_back();
      if (!out.empty()) out.pop_back();
      continue;
    }
    if (text[i] == '\x1b' && i + 1 < text.size() && text[i + 1] == '[') {
      size_t j = i + 2;
      while (j < text.size() && ((text[j] >= '0' && text[j] <= '9') || text[j] == ';')) ++j;
      if (j < text.size() &&
          ((text[j] >= 'A' && text[j] <= 'Z') || (text[j] >= 'a' && text[j] <= 'z'))) {
        i = j;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

namespace {

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

void add_document(std::vector<std::string>& docs, std::string_view text) {
  std::string_view t = trim(text);
  if (!t.empty()) docs.emplace_back(t);
}

}  // namespace

std::vector<std::string> split_documents(std::string_view text, const std::string& format) {
  std::vector<std::string> docs;
  if (format == "text") {
    add_document(docs, text);
    return docs;
  }
  MOXING_CHECK(format == "fortune" || format == "lines",
               "text format '{}' is not known (valid: fortune, lines, text)", format);
  std::string clean = format == "fortune" ? strip_terminal_codes(text) : std::string(text);
  std::string_view rest = clean;
  std::string current;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (format == "lines") {
      add_document(docs, line);
    } else if (trim(line) == "%") {
      add_document(docs, current);
      current.clear();
    } else {
      current.append(line);
      current += '\n';
    }
  }
  if (format == "fortune") add_document(docs, current);
  return docs;
}

std::vector<std::string> read_documents(const std::string& path, const std::string& format,
                                        bool replace_invalid) {
  MOXING_CHECK(fs::exists(path),
               "text file {} does not exist (for the fortunes corpora install the Debian "
               "packages fortunes and fortunes-zh: scripts/setup does)",
               path);
  std::string text = read_text_file(path);
  if (replace_invalid) {
    text = tokenizers::replace_invalid_utf8(text);
  } else {
    try {
      tokenizers::check_utf8(text, "text file " + path);
    } catch (const Error& e) {
      fail("{}; or set [data] invalid_utf8 = \"replace\"", e.what());
    }
  }
  return split_documents(text, format);
}

double unigram_entropy(const TokenFile& tokens, int64_t vocab_size) {
  std::vector<int64_t> counts(static_cast<size_t>(vocab_size), 0);
  const int64_t n = tokens.size();
  std::vector<int64_t> chunk(65536);
  for (int64_t off = 0; off < n; off += static_cast<int64_t>(chunk.size())) {
    int64_t m = std::min<int64_t>(static_cast<int64_t>(chunk.size()), n - off);
    tokens.read(off, m, chunk.data());
    for (int64_t i = 0; i < m; ++i) {
      MOXING_CHECK(chunk[static_cast<size_t>(i)] < vocab_size,
                   "token file {}: id {} at {} is outside the vocabulary of {}", tokens.path(),
                   chunk[static_cast<size_t>(i)], off + i, vocab_size);
      ++counts[static_cast<size_t>(chunk[static_cast<size_t>(i)])];
    }
  }
  double h = 0;
  for (int64_t c : counts) {
    if (c == 0) continue;
    double p = static_cast<double>(c) / static_cast<double>(n);
    h -= p * std::log(p);
  }
  return h;
}

namespace {

std::shared_ptr<tokenizers::Tokenizer> make_tokenizer(const TextDataOptions& d,
                                                      const std::vector<std::string>& train_docs) {
  if (d.tokenizer == "char") {
    tokenizers::CharTrainOptions o;
    o.max_vocab = d.vocab_size;
    return std::make_shared<tokenizers::CharTokenizer>(
        tokenizers::CharTokenizer::train(train_docs, o));
  }
  if (d.tokenizer == "bpe") {
    tokenizers::BpeTrainOptions o;
    o.vocab_size = d.vocab_size;
    return std::make_shared<tokenizers::ByteLevelBPE>(
        tokenizers::ByteLevelBPE::train(train_docs, o));
  }
  if (d.tokenizer == "wordpiece") {
    tokenizers::WordPieceTrainOptions o;
    if (d.vocab_size > 0) o.vocab_size = d.vocab_size;
    return std::make_shared<tokenizers::WordPieceTokenizer>(
        tokenizers::WordPieceTokenizer::train(train_docs, o));
  }
  MOXING_CHECK(fs::is_directory(d.tokenizer) || fs::is_regular_file(d.tokenizer),
               "config: [data] tokenizer '{}' is neither \"char\", \"bpe\", \"wordpiece\" nor a "
               "tokenizer folder",
               d.tokenizer);
  return std::shared_ptr<tokenizers::Tokenizer>(tokenizers::load_tokenizer(d.tokenizer));
}

std::vector<int32_t> encode_documents(const tokenizers::Tokenizer& tok,
                                      const std::vector<std::string>& docs, int32_t eos) {
  std::vector<int32_t> ids;
  for (const auto& doc : docs) {
    std::vector<int32_t> part = tok.encode(doc);
    ids.insert(ids.end(), part.begin(), part.end());
    ids.push_back(eos);
  }
  return ids;
}

bool is_table(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  return ext == ".csv" || ext == ".tsv";
}

// the texts of a table's column, one document each
std::vector<std::string> read_table_documents(const std::string& path, const std::string& column) {
  MOXING_CHECK(fs::exists(path), "text file {} does not exist{}", path,
               path.find("data/text") != std::string::npos
                   ? " (scripts/get-text-data fetches the text data sets)"
                   : "");
  data::CsvTable t = data::read_csv(path);
  const size_t c = t.column(column, "[data] text_column");
  std::vector<std::string> docs;
  for (const auto& row : t.rows) {
    if (row[c].find_first_not_of(" \t\r\n") != std::string::npos) docs.push_back(row[c]);
  }
  return docs;
}

nlohmann::json data_key(const Config& config, const TextDataOptions& d) {
  nlohmann::json key = {{"files", d.files},
                        {"format", d.format},
                        {"tokenizer", d.tokenizer},
                        {"vocab_size", d.vocab_size},
                        {"invalid_utf8", d.invalid_utf8},
                        {"val_fraction", config.data.val_fraction},
                        {"seed", config.train.seed}};
  for (const std::string& f : d.files) {
    if (is_table(f)) key["text_column"] = d.text_column;
  }
  return key;
}

}  // namespace

void check_text_options(const TextDataOptions& d) {
  MOXING_CHECK(!d.files.empty(), "config: [data] files lists no text files");
  check_choice("[data] format", d.format, {"fortune", "lines", "text"});
  check_choice("[data] invalid_utf8", d.invalid_utf8, {"error", "replace"});
  MOXING_CHECK(d.vocab_size >= 0, "config: [data] vocab_size must be >= 0, got {}", d.vocab_size);
}

LMData prepare_lm_data(const Config& config, const TextDataOptions& d, const std::string& out_dir,
                       bool progress) {
  const fs::path dir = fs::path(out_dir) / "data";
  const std::string meta_path = (dir / "meta.json").string();
  LMData out;
  nlohmann::json key = data_key(config, d);
  if (fs::exists(meta_path)) {
    nlohmann::json meta;
    try {
      meta = nlohmann::json::parse(read_text_file(meta_path));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not valid JSON ({}); delete {} to tokenize the corpus again", meta_path, e.what(),
           dir.string());
    }
    if (meta.value("key", nlohmann::json()) == key) {
      out.tokenizer = std::shared_ptr<tokenizers::Tokenizer>(
          tokenizers::load_tokenizer((dir / "tokenizer").string()));
      int elem = meta.at("elem_size").get<int>();
      out.train = std::make_shared<TokenFile>((dir / "train.bin").string(), elem);
      MOXING_CHECK(out.train->size() == meta.at("train_tokens").get<int64_t>(),
                   "{}: has {} tokens, meta.json says {}; delete {} to tokenize again",
                   out.train->path(), out.train->size(), meta.at("train_tokens").get<int64_t>(),
                   dir.string());
      if (meta.at("val_tokens").get<int64_t>() > 0) {
        out.val = std::make_shared<TokenFile>((dir / "val.bin").string(), elem);
        MOXING_CHECK(out.val->size() == meta.at("val_tokens").get<int64_t>(),
                     "{}: has {} tokens, meta.json says {}; delete {} to tokenize again",
                     out.val->path(), out.val->size(), meta.at("val_tokens").get<int64_t>(),
                     dir.string());
        out.val_unigram_loss = meta.at("val_unigram_loss").get<double>();
      }
      out.eos_id = meta.at("eos_id").get<int32_t>();
      out.train_documents = meta.at("train_documents").get<int64_t>();
      out.val_documents = meta.at("val_documents").get<int64_t>();
      return out;
    }
  }

  auto start = std::chrono::steady_clock::now();
  std::vector<std::string> docs;
  for (const auto& f : d.files) {
    std::vector<std::string> part = is_table(f)
                                        ? read_table_documents(f, d.text_column)
                                        : read_documents(f, d.format, d.invalid_utf8 == "replace");
    MOXING_CHECK(!part.empty(), "text file {} holds no documents (format {})", f, d.format);
    docs.insert(docs.end(), std::make_move_iterator(part.begin()),
                std::make_move_iterator(part.end()));
  }
  Generator gen(static_cast<uint64_t>(config.train.seed));
  std::vector<int64_t> order = data::permutation(static_cast<int64_t>(docs.size()), gen);
  auto n_val =
      static_cast<int64_t>(std::floor(config.data.val_fraction * static_cast<double>(docs.size())));
  MOXING_CHECK(config.data.val_fraction == 0 || n_val > 0,
               "[data] val_fraction {} of {} documents leaves no validation document",
               config.data.val_fraction, docs.size());
  std::vector<std::string> train_docs, val_docs;
  for (int64_t i = 0; i < static_cast<int64_t>(order.size()); ++i) {
    auto& doc = docs[static_cast<size_t>(order[static_cast<size_t>(i)])];
    (i < n_val ? val_docs : train_docs).push_back(std::move(doc));
  }
  MOXING_CHECK(!train_docs.empty(), "[data] files hold no training documents");

  out.tokenizer = make_tokenizer(d, train_docs);
  auto eos = out.tokenizer->eos_token_id();
  if (!eos) eos = out.tokenizer->token_to_id("[SEP]");  // BERT's separator
  MOXING_CHECK(eos.has_value(),
               "tokenizer {} has no end-of-text token (<|endoftext|>, [SEP]), which separates "
               "documents",
               d.tokenizer);
  out.eos_id = *eos;
  std::vector<int32_t> train_ids = encode_documents(*out.tokenizer, train_docs, out.eos_id);
  std::vector<int32_t> val_ids = encode_documents(*out.tokenizer, val_docs, out.eos_id);
  const int elem = token_element_size(out.tokenizer->vocab_size());

  fs::create_directories(dir);
  fs::remove(meta_path);  // the files below are incomplete until meta.json is written again
  out.tokenizer->save((dir / "tokenizer").string());
  write_token_file((dir / "train.bin").string(), train_ids, elem);
  out.train = std::make_shared<TokenFile>((dir / "train.bin").string(), elem);
  if (!val_ids.empty()) {
    write_token_file((dir / "val.bin").string(), val_ids, elem);
    out.val = std::make_shared<TokenFile>((dir / "val.bin").string(), elem);
    out.val_unigram_loss = unigram_entropy(*out.val, out.tokenizer->vocab_size());
  }
  out.train_documents = static_cast<int64_t>(train_docs.size());
  out.val_documents = static_cast<int64_t>(val_docs.size());
  nlohmann::json meta = {{"key", key},
                         {"elem_size", elem},
                         {"vocab_size", out.tokenizer->vocab_size()},
                         {"eos_id", out.eos_id},
                         {"train_tokens", out.train->size()},
                         {"val_tokens", val_ids.size()},
                         {"train_documents", out.train_documents},
                         {"val_documents", out.val_documents},
                         {"val_unigram_loss", out.val_unigram_loss}};
  write_text_file_atomic(meta_path, meta.dump(2) + "\n");
  if (progress) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cerr << fmt::format(
        "data: {} documents ({} train, {} val), {} tokenizer with {} tokens, {} train and {} val "
        "tokens ({:.1f} s)\n",
        docs.size(), out.train_documents, out.val_documents, out.tokenizer->type(),
        out.tokenizer->vocab_size(), out.train->size(), val_ids.size(), secs);
  }
  return out;
}

void sample_windows(const TokenFile& tokens, int64_t batch, int64_t T, uint64_t seed, uint64_t draw,
                    Tensor& x, Tensor& y) {
  const int64_t n = tokens.size();
  MOXING_CHECK(n >= T + 1,
               "token file {} has {} tokens, fewer than one window of n_positions + 1 = {}; use a "
               "smaller [model] n_positions or more text",
               tokens.path(), n, T + 1);
  x = empty({batch, T}, DType::i64);
  y = empty({batch, T}, DType::i64);
  Generator gen(seed);
  std::vector<int64_t> window(static_cast<size_t>(T + 1));
  const auto span = static_cast<uint64_t>(n - T);  // offsets 0 .. n-T-1
  for (int64_t b = 0; b < batch; ++b) {
    auto r = gen.block(draw * static_cast<uint64_t>(batch) + static_cast<uint64_t>(b));
    uint64_t v = (static_cast<uint64_t>(r[0]) << 32) | r[1];
    auto offset = static_cast<int64_t>(v % span);
    tokens.read(offset, T + 1, window.data());
    std::copy(window.begin(), window.end() - 1, x.data<int64_t>() + b * T);
    std::copy(window.begin() + 1, window.end(), y.data<int64_t>() + b * T);
  }
}

void sequential_windows(const TokenFile& tokens, int64_t T, int64_t first, int64_t count, Tensor& x,
                        Tensor& y) {
  x = empty({count, T}, DType::i64);
  y = empty({count, T}, DType::i64);
  std::vector<int64_t> window(static_cast<size_t>(T + 1));
  for (int64_t b = 0; b < count; ++b) {
    tokens.read((first + b) * T, T + 1, window.data());
    std::copy(window.begin(), window.end() - 1, x.data<int64_t>() + b * T);
    std::copy(window.begin() + 1, window.end(), y.data<int64_t>() + b * T);
  }
}

RunValTokens open_run_val_tokens(const LoadedRun& run, int64_t vocab_size) {
  // the run folder holding data/: the run's, or above the checkpoint
  fs::path model_dir = fs::absolute(run.checkpoint_dir);
  std::optional<fs::path> dir;
  for (const fs::path& p : {fs::path(run.run_dir), model_dir, model_dir.parent_path(),
                            model_dir.parent_path().parent_path()}) {
    if (!p.empty() && fs::exists(p / "data" / "meta.json")) {
      dir = p;
      break;
    }
  }
  MOXING_CHECK(dir.has_value(),
               "{}: no data/meta.json of a `moxing train` run beside this model, so there is no "
               "validation split to evaluate",
               run.checkpoint_dir);
  std::string meta_path = (*dir / "data" / "meta.json").string();
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(read_text_file(meta_path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", meta_path, e.what());
  }
  MOXING_CHECK(meta.value("val_tokens", 0) > 0, "{}: the run has no validation split",
               dir->string());
  MOXING_CHECK(meta.value("vocab_size", int64_t{0}) == vocab_size,
               "{}: the token files were made with a tokenizer of {} tokens, the model's has {}",
               meta_path, meta.value("vocab_size", int64_t{0}), vocab_size);
  RunValTokens out;
  out.tokens = std::make_shared<TokenFile>((*dir / "data" / "val.bin").string(),
                                           meta.at("elem_size").get<int>());
  out.unigram_loss = meta.value("val_unigram_loss", 0.0);
  return out;
}

}  // namespace moxing::train
