// BERT WordPiece against HF `tokenizers`: the two tokenizers (lowercase with TemplateProcessing,
// cased with BertProcessing), their ids, token types, attention masks, truncated and padded
// pairs, batches and decoded text come from
// tests/fixtures/tokenizers/make_wordpiece_fixtures.py.
#include "moxing/tokenizers/wordpiece.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "moxing/core/error.h"
#include "moxing/tokenizers/tokenizer.h"
#include "moxing/tokenizers/utf8.h"

using namespace moxing::tokenizers;
namespace fs = std::filesystem;

namespace {

const std::string kDir = MOXING_FIXTURE_DIR "/tokenizers";
const char* kVariants[] = {"uncased", "cased"};

const nlohmann::json& expected() {
  static const nlohmann::json j = [] {
    std::ifstream f(kDir + "/wordpiece_expected.json");
    return nlohmann::json::parse(f);
  }();
  return j;
}

std::string temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("moxing_wp_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d.string();
}

const WordPieceTokenizer& as_wordpiece(const Tokenizer& tok) {
  const auto* wp = dynamic_cast<const WordPieceTokenizer*>(&tok);
  if (!wp) throw std::runtime_error("not a WordPieceTokenizer: " + tok.type());
  return *wp;
}

void expect_encoding(const Encoding& e, const nlohmann::json& want, const std::string& what) {
  EXPECT_EQ(e.ids, want.at("ids").get<std::vector<int32_t>>()) << what;
  EXPECT_EQ(e.token_type_ids, want.at("token_type_ids").get<std::vector<int32_t>>()) << what;
  EXPECT_EQ(e.attention_mask, want.at("attention_mask").get<std::vector<int32_t>>()) << what;
}

EncodeOptions options(const nlohmann::json& c) {
  EncodeOptions o;
  if (!c.at("max_length").is_null()) o.max_length = c.at("max_length").get<int64_t>();
  if (!c.at("pad_to").is_null()) o.pad_to = c.at("pad_to").get<int64_t>();
  return o;
}

// Every case of one variant: plain ids and tokens, model inputs, decoded text.
void expect_matches_fixture(const Tokenizer& tok, const std::string& variant) {
  const auto& wp = as_wordpiece(tok);
  const auto& ref = expected().at(variant);
  for (const auto& c : ref.at("cases")) {
    std::string text = c.at("text");
    auto ids = wp.encode(text);
    EXPECT_EQ(ids, c.at("ids").get<std::vector<int32_t>>()) << variant << " text: " << text;
    EXPECT_EQ(wp.tokenize(text), c.at("tokens").get<std::vector<std::string>>()) << text;
    Encoding e = wp.encode_for_model(text);
    expect_encoding(e, c.at("encoding"), variant + " text: " + text);
    EXPECT_EQ(wp.decode(e.ids), c.at("decoded").get<std::string>()) << text;
    EXPECT_EQ(wp.decode(e.ids, true), c.at("decoded_skip").get<std::string>()) << text;
    EXPECT_EQ(wp.decode(ids, true), c.at("decoded_plain_skip").get<std::string>()) << text;
  }
  for (const auto& c : ref.at("single_truncated")) {
    expect_encoding(wp.encode_for_model(c.at("text").get<std::string>(), std::nullopt, options(c)),
                    c.at("encoding"), variant + " truncated: " + c.dump());
  }
  for (const auto& c : ref.at("pairs")) {
    std::string a = c.at("a"), b = c.at("b");
    Encoding e = wp.encode_for_model(a, b, options(c));
    expect_encoding(e, c.at("encoding"), variant + " pair: " + c.dump());
    EXPECT_EQ(wp.decode(e.ids, true), c.at("decoded_skip").get<std::string>()) << c.dump();
  }
  auto texts = ref.at("batch").at("texts").get<std::vector<std::string>>();
  auto batch = wp.encode_batch(texts);
  const auto& want = ref.at("batch").at("encodings");
  ASSERT_EQ(batch.size(), want.size());
  for (size_t i = 0; i < batch.size(); ++i) expect_encoding(batch[i], want[i], "batch");
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& p : ref.at("batch_pairs").at("pairs")) pairs.emplace_back(p[0], p[1]);
  auto pair_batch = wp.encode_batch(pairs);
  const auto& want_pairs = ref.at("batch_pairs").at("encodings");
  ASSERT_EQ(pair_batch.size(), want_pairs.size());
  for (size_t i = 0; i < pair_batch.size(); ++i) {
    expect_encoding(pair_batch[i], want_pairs[i], "pair batch");
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const moxing::Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_ERROR_HAS(call, needle)                                  \
  do {                                                                  \
    std::string msg = error_of([&] { call; });                          \
    EXPECT_NE(msg.find(needle), std::string::npos) << "error: " << msg; \
  } while (0)

}  // namespace

TEST(WordPiece, HFTokenizerJsonMatches) {
  for (const char* v : kVariants) {
    auto tok = load_tokenizer(kDir + "/wordpiece_" + v + "/tokenizer.json");
    EXPECT_EQ(tok->type(), "wordpiece");
    expect_matches_fixture(*tok, v);
  }
}

TEST(WordPiece, VocabTxtFolderMatchesTokenizerJson) {
  for (const char* v : kVariants) {
    std::string dir = temp_dir(std::string("vocab_") + v);
    fs::create_directories(dir);
    fs::copy_file(kDir + "/wordpiece_" + v + "/vocab.txt", dir + "/vocab.txt");
    fs::copy_file(kDir + "/wordpiece_" + v + "/tokenizer_config.json",
                  dir + "/tokenizer_config.json");
    auto from_txt = load_tokenizer(dir);
    auto from_json = load_tokenizer(kDir + "/wordpiece_" + v);
    ASSERT_EQ(from_txt->vocab_size(), from_json->vocab_size());
    for (const auto& c : expected().at(v).at("cases")) {
      std::string text = c.at("text");
      EXPECT_EQ(from_txt->encode(text), from_json->encode(text)) << v << " text: " << text;
    }
    expect_matches_fixture(*from_txt, v);
    fs::remove_all(dir);
  }
}

TEST(WordPiece, SaveLoadRoundTrip) {
  for (const char* v : kVariants) {
    auto tok = load_tokenizer(kDir + "/wordpiece_" + v);
    std::string dir = temp_dir(std::string("save_") + v);
    tok->save(dir);
    EXPECT_TRUE(fs::exists(dir + "/vocab.txt"));
    auto back = load_tokenizer(dir);
    expect_matches_fixture(*back, v);
    // The vocab.txt it wrote gives the same ids (lowercase is the vocab.txt default, so the
    // cased one needs its tokenizer_config.json).
    fs::remove(dir + "/tokenizer.json");
    if (std::string(v) == "cased") {
      fs::copy_file(kDir + "/wordpiece_cased/tokenizer_config.json",
                    dir + "/tokenizer_config.json");
    }
    expect_matches_fixture(*load_tokenizer(dir), v);
    fs::remove_all(dir);
  }
}

TEST(WordPiece, NormalizerAndPreTokenizer) {
  auto tok = load_tokenizer(kDir + "/wordpiece_uncased");
  const auto& wp = as_wordpiece(*tok);
  EXPECT_EQ(wp.normalize("Ångström\tCAFÉ\x01中文"), "angstrom cafe 中  文 ");
  EXPECT_EQ(wp.normalize("\xC4\xB0"), "i");  // İ: strip accents drops the dot, then lowercase
  WordPieceOptions o;
  o.normalizer.strip_accents = false;
  WordPieceTokenizer keep({"[UNK]", "a"}, {}, o);
  EXPECT_EQ(keep.normalize("\xC4\xB0"), "i\xCC\x87");
  EXPECT_EQ(keep.normalize("\xC3\x89t\xC3\xA9"), "\xC3\xA9t\xC3\xA9");
  EXPECT_EQ(wp.tokenize("hello,world"), wp.tokenize("hello , world"));
}

TEST(WordPiece, GreedyLongestMatchAndLongWords) {
  WordPieceOptions o;
  o.max_input_chars_per_word = 8;
  WordPieceTokenizer tok({"[UNK]", "un", "##aff", "##able", "una", "##ffable", "a", "##a"}, {}, o);
  auto tokens = [&](std::string_view t) {
    std::vector<std::string> out;
    for (int32_t id : tok.encode(t)) out.push_back(tok.id_to_token(id));
    return out;
  };
  // longest first: "una" + "##ffable", not "un" + "##aff" + "##able"
  EXPECT_EQ(tokens("unaffable"), (std::vector<std::string>{"[UNK]"}));  // 9 > 8 characters
  EXPECT_EQ(tokens("unaffabl"), (std::vector<std::string>{"[UNK]"}));   // no "##ffabl"
  EXPECT_EQ(tokens("aaaa"), (std::vector<std::string>{"a", "##a", "##a", "##a"}));
  WordPieceTokenizer wide({"[UNK]", "un", "##aff", "##able", "una", "##ffable"}, {});
  EXPECT_EQ(wide.decode(wide.encode("unaffable")), "unaffable");
  EXPECT_EQ(wide.encode("unaffable"), (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(wide.encode("UNAFFABLE unknown"), (std::vector<int32_t>{4, 5, 0}));
}

TEST(WordPiece, BadInput) {
  auto tok = load_tokenizer(kDir + "/wordpiece_uncased");
  EXPECT_ERROR_HAS(tok->encode("hello \xFF world"), "invalid UTF-8 at byte 6");
  const auto& wp = as_wordpiece(*tok);
  EncodeOptions tiny;
  tiny.max_length = 2;
  EXPECT_ERROR_HAS(wp.encode_for_model("a", "b", tiny), "special tokens alone take 3");
  EXPECT_ERROR_HAS(WordPieceTokenizer({"a", "b"}, {}), "unk token '[UNK]' is not in the vocab");
  WordPieceTokenizer no_pad({"[UNK]", "a"}, {});
  EncodeOptions padded;
  padded.pad_to = 4;
  EXPECT_ERROR_HAS(no_pad.encode_for_model("a", std::nullopt, padded), "pad token '[PAD]'");

  std::string dir = temp_dir("bad");
  fs::create_directories(dir);
  std::ofstream(dir + "/vocab.txt") << "";
  EXPECT_ERROR_HAS(load_tokenizer(dir), "vocab.txt: the vocab is empty");
  std::ofstream(dir + "/vocab.txt") << "a\nb\n";
  std::string msg = error_of([&] { load_tokenizer(dir); });
  EXPECT_NE(msg.find("unk token '[UNK]' is not in the vocab"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir + "/vocab.txt"), std::string::npos) << msg;
  std::ofstream(dir + "/vocab.txt") << "[UNK]\na\xC3\n";
  EXPECT_ERROR_HAS(load_tokenizer(dir), "vocab.txt: invalid UTF-8 at byte 7");
  fs::remove(dir + "/vocab.txt");
  EXPECT_ERROR_HAS(load_tokenizer(dir),
                   "no tokenizer.json, and no vocab.json + merges.txt or vocab.txt");

  auto good = nlohmann::json::parse(std::ifstream(kDir + "/wordpiece_uncased/tokenizer.json"));
  auto expect_json_error = [&](const nlohmann::json& j, const std::string& needle) {
    std::string path = dir + "/tokenizer.json";
    std::ofstream(path) << j.dump();
    std::string m = error_of([&] { load_tokenizer(path); });
    EXPECT_NE(m.find(needle), std::string::npos) << m;
    EXPECT_NE(m.find(path), std::string::npos) << m;
  };
  auto j = good;
  j["normalizer"] = {{"type", "NFKC"}};
  expect_json_error(j, "unsupported normalizer type 'NFKC' for WordPiece");
  j = good;
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_json_error(j, "unsupported pre_tokenizer type 'Whitespace' for WordPiece");
  j = good;
  j["model"]["unk_token"] = "<unk>";
  expect_json_error(j, "unk token '<unk>' is not in the vocab");
  j = good;
  j["model"]["vocab"] = nlohmann::json::object();
  expect_json_error(j, "vocab is empty");
  j = good;
  j["model"]["type"] = "Unigram";
  expect_json_error(j, "unsupported model type 'Unigram' (moxing reads BPE, WordLevel, WordPiece)");
  fs::remove_all(dir);
}

TEST(WordPiece, RegistryListsTheModelTypes) {
  auto types = tokenizer_model_types();
  EXPECT_EQ(types, (std::vector<std::string>{"BPE", "WordLevel", "WordPiece"}));
}

TEST(WordPiece, TrainingLikeHFWordPieceTrainer) {
  auto corpus = expected().at("corpus").get<std::vector<std::string>>();
  auto hf = load_tokenizer(kDir + "/wordpiece_uncased");
  WordPieceTrainOptions o;
  o.vocab_size = 1200;  // as make_wordpiece_fixtures.py; the corpus gives fewer tokens
  auto tok = WordPieceTokenizer::train(corpus, o);
  // HF numbers the "##" characters in hash order, and merges that tie on count follow the
  // ids: the specials and the characters are the same, and most merged tokens.
  std::vector<std::string> mine, theirs;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) mine.push_back(tok.id_to_token(id));
  for (int32_t id = 0; id < hf->vocab_size(); ++id) theirs.push_back(hf->id_to_token(id));
  for (int32_t id = 0; id < 5; ++id) EXPECT_EQ(mine[id], theirs[id]);
  auto chars = [](std::vector<std::string> tokens) {  // one character, with or without ##
    std::erase_if(tokens, [](const std::string& t) {
      std::string_view v = t;
      if (v.starts_with("##")) v.remove_prefix(2);
      char32_t cp;
      return v.empty() || detail::utf8_sequence(v, 0, &cp) != static_cast<int>(v.size());
    });
    std::sort(tokens.begin(), tokens.end());
    return tokens;
  };
  EXPECT_EQ(chars(mine), chars(theirs));
  std::sort(mine.begin(), mine.end());
  std::sort(theirs.begin(), theirs.end());
  std::vector<std::string> common;
  std::set_intersection(mine.begin(), mine.end(), theirs.begin(), theirs.end(),
                        std::back_inserter(common));
  EXPECT_NEAR(static_cast<double>(tok.vocab_size()), static_cast<double>(hf->vocab_size()), 8);
  EXPECT_GT(common.size(), theirs.size() * 95 / 100) << "shared tokens";
  for (const auto& text : corpus) {
    auto ids = tok.encode(text);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.unk_id()), 0) << text;
  }
  std::string dir = temp_dir("trained");
  tok.save(dir);
  auto back = load_tokenizer(dir);
  for (const auto& text : corpus) EXPECT_EQ(back->encode(text), tok.encode(text)) << text;
  fs::remove_all(dir);
  WordPieceTrainOptions none;
  none.special_tokens = {"[PAD]"};
  EXPECT_ERROR_HAS(WordPieceTokenizer::train(corpus, none), "need the unk token '[UNK]'");
}
