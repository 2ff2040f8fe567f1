// Byte-level BPE against HF `tokenizers`: the fixtures (tokenizer.json, vocab.json +
// merges.txt, ids, decoded text, pre-tokenizer pieces and the trained merges) come from
// tests/fixtures/tokenizers/make_fixtures.py.
#include "moxing/tokenizers/bpe.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "moxing/core/error.h"
#include "moxing/tokenizers/tokenizer.h"
#include "moxing/tokenizers/utf8.h"
#include "tokenizers/pretokenize.h"

using namespace moxing::tokenizers;
namespace fs = std::filesystem;

namespace {

const std::string kDir = MOXING_FIXTURE_DIR "/tokenizers";

const nlohmann::json& expected() {
  static const nlohmann::json j = [] {
    std::ifstream f(kDir + "/expected.json");
    return nlohmann::json::parse(f);
  }();
  return j;
}

std::vector<std::string> corpus() {
  return expected().at("corpus").get<std::vector<std::string>>();
}

std::string temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("moxing_tok_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d.string();
}

void expect_matches_fixture(const Tokenizer& tok, const char* key = "bpe") {
  for (const auto& c : expected().at(key)) {
    std::string text = c.at("text");
    auto ids = tok.encode(text);
    EXPECT_EQ(ids, c.at("ids").get<std::vector<int32_t>>()) << "text: " << text;
    EXPECT_EQ(tok.decode(ids), c.at("decoded").get<std::string>()) << "text: " << text;
    EXPECT_EQ(tok.decode(ids, true), c.at("decoded_skip").get<std::string>()) << "text: " << text;
  }
}

// Random valid UTF-8: code points from every length class, surrogates left out.
std::string random_utf8(std::mt19937& rng, int n) {
  std::string s;
  std::uniform_int_distribution<int> cls(0, 9);
  for (int i = 0; i < n; ++i) {
    char32_t cp;
    switch (cls(rng)) {
      case 0:
      case 1:
      case 2:
        cp = std::uniform_int_distribution<char32_t>(0, 0x7F)(rng);
        break;
      case 3:
        cp = U' ';
        break;
      case 4:
        cp = std::uniform_int_distribution<char32_t>(0x80, 0x7FF)(rng);
        break;
      case 5:
      case 6:
        cp = std::uniform_int_distribution<char32_t>(0x4E00, 0x9FFF)(rng);
        break;
      case 7:
        cp = std::uniform_int_distribution<char32_t>(0x800, 0xD7FF)(rng);
        break;
      case 8:
        cp = std::uniform_int_distribution<char32_t>(0xE000, 0xFFFF)(rng);
        break;
      default:
        cp = std::uniform_int_distribution<char32_t>(0x10000, 0x10FFFF)(rng);
        break;
    }
    detail::append_utf8(s, cp);
  }
  return s;
}

}  // namespace

TEST(Bpe, PreTokenizerPiecesMatchHF) {
  for (const auto& c : expected().at("bpe")) {
    std::string text = c.at("text");
    std::vector<std::string> pieces;
    detail::split_gpt2(text, [&](std::string_view p) { pieces.emplace_back(p); });
    EXPECT_EQ(pieces, c.at("pieces").get<std::vector<std::string>>()) << "text: " << text;
  }
}

TEST(Bpe, TokenizerJsonMatchesHF) {
  auto tok = load_tokenizer(kDir + "/bpe/tokenizer.json");
  EXPECT_EQ(tok->type(), "bpe");
  EXPECT_EQ(tok->vocab_size(), 800);
  EXPECT_EQ(tok->eos_token_id(), 0);
  expect_matches_fixture(*tok);
}

TEST(Bpe, VocabAndMergesMatchHF) {
  auto tok = load_tokenizer(kDir + "/bpe_gpt2");
  EXPECT_EQ(tok->vocab_size(), 800);
  expect_matches_fixture(*tok);
}

TEST(Bpe, AddedTokensWithStripFlagsMatchHF) {
  auto tok = load_tokenizer(kDir + "/bpe_added/tokenizer.json");
  expect_matches_fixture(*tok, "bpe_added");
  std::string dir = temp_dir("added");
  tok->save(dir);
  expect_matches_fixture(*load_tokenizer(dir), "bpe_added");
  fs::remove_all(dir);
}

// SmolLM's pre-tokenizer (Digits with individual digits, then ByteLevel), read from
// tokenizer.json and from a GGUF file's tokenizer.ggml.* metadata (llama.cpp's "smollm"), and
// saved back: the ids Hugging Face tokenizers gives (make_gguf_tokenizer_fixture.py)
TEST(Bpe, IndividualDigitsFromTokenizerJsonAndGgufMatchHF) {
  std::ifstream f(kDir + "/bpe_digits_expected.json");
  const nlohmann::json expected = nlohmann::json::parse(f);
  auto from_json = load_tokenizer(kDir + "/bpe_digits/tokenizer.json");
  auto from_gguf = load_tokenizer(kDir + "/bpe_digits.gguf");
  std::string dir = temp_dir("digits");
  from_gguf->save(dir);
  auto saved = load_tokenizer(dir);
  ASSERT_EQ(expected.size(), 4u);
  for (const auto& [text, ids] : expected.items()) {
    const auto want = ids.get<std::vector<int32_t>>();
    EXPECT_EQ(from_json->encode(text), want) << text;
    EXPECT_EQ(from_gguf->encode(text), want) << text;
    EXPECT_EQ(saved->encode(text), want) << text;
    EXPECT_EQ(from_gguf->decode(want), text);
  }
  EXPECT_TRUE(from_gguf->is_special(0));
  EXPECT_EQ(from_gguf->vocab_size(), 800);
  fs::remove_all(dir);
  // a GGUF file without a tokenizer says so
  try {
    load_tokenizer(MOXING_FIXTURE_DIR "/gguf/tiny.gguf");
    ADD_FAILURE() << "a GGUF file without a tokenizer loaded one";
  } catch (const moxing::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tokenizer in the metadata"), std::string::npos)
        << e.what();
  }
}

TEST(Bpe, SaveThenLoadGivesTheSameIds) {
  auto tok = load_tokenizer(kDir + "/bpe");
  std::string dir = temp_dir("save");
  tok->save(dir);
  EXPECT_TRUE(fs::exists(dir + "/vocab.json"));
  EXPECT_TRUE(fs::exists(dir + "/merges.txt"));
  auto a = load_tokenizer(dir);
  auto b = ByteLevelBPE::from_vocab_merges(dir + "/vocab.json", dir + "/merges.txt");
  expect_matches_fixture(*a);
  expect_matches_fixture(b);
  fs::remove_all(dir);
}

TEST(Bpe, RoundTripsMixedAndRandomUtf8) {
  auto tok = load_tokenizer(kDir + "/bpe");
  for (const auto& t : corpus()) EXPECT_EQ(tok->decode(tok->encode(t)), t);
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string s = random_utf8(rng, i % 60);
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  }
  std::string long_word(200, 'q');
  for (int i = 0; i < 40; ++i) long_word += "中文";
  EXPECT_EQ(tok->decode(tok->encode(long_word)), long_word);
}

TEST(Bpe, InvalidUtf8IsAnErrorWithTheOffset) {
  auto tok = load_tokenizer(kDir + "/bpe");
  try {
    tok->encode("good text \xE4\xB8 then");
    FAIL() << "no error";
  } catch (const moxing::Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid UTF-8 at byte 10"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(tok->decode(tok->encode(replace_invalid_utf8("a\xFF"
                                                         "b"))),
            "a\xEF\xBF\xBD"
            "b");
}

TEST(Bpe, TrainingMatchesHFMerges) {
  BpeTrainOptions o;
  o.vocab_size = expected().at("vocab_size");
  o.min_frequency = expected().at("min_frequency");
  auto ours = ByteLevelBPE::train(corpus(), o);
  auto hf = load_tokenizer(kDir + "/bpe/tokenizer.json");
  auto& hf_bpe = dynamic_cast<ByteLevelBPE&>(*hf);
  EXPECT_EQ(ours.vocab_size(), hf_bpe.vocab_size());
  EXPECT_EQ(ours.merges(), hf_bpe.merges());
  for (int64_t id = 0; id < ours.vocab_size(); ++id) {
    EXPECT_EQ(ours.id_to_token(id), hf_bpe.id_to_token(id)) << id;
  }
}

TEST(Bpe, TrainingIsDeterministicAndReachesTheVocabSize) {
  // A Chinese sample: sentences drawn from a fixed character set with a fixed seed.
  const std::string chars =
      "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏闰余成岁律吕调阳云腾致雨露结为霜";
  std::vector<std::string> cs;
  for (size_t i = 0; i < chars.size(); i += 3) cs.push_back(chars.substr(i, 3));
  std::mt19937 rng(3);
  std::vector<std::string> texts;
  for (int s = 0; s < 1500; ++s) {
    std::string t;
    int n = 4 + static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) t += cs[rng() % cs.size()];
    t += s % 3 ? "，" : "。\n";
    texts.push_back(t);
  }
  BpeTrainOptions o;
  o.vocab_size = 1000;
  auto a = ByteLevelBPE::train(texts, o);
  auto b = ByteLevelBPE::train(texts, o);
  EXPECT_EQ(a.vocab_size(), 1000);
  EXPECT_EQ(a.merges(), b.merges());
  EXPECT_EQ(a.token_to_id("<|endoftext|>"), 0);
  for (const auto& t : texts) EXPECT_EQ(a.decode(a.encode(t)), t);
  EXPECT_THROW(ByteLevelBPE::train(texts, {.vocab_size = 100}), moxing::Error);
}

TEST(Bpe, StreamDecoderEmitsWholeCharacters) {
  auto tok = load_tokenizer(kDir + "/bpe");
  std::string text = "量子计算机 uses qubits; 天地玄黄，宇宙洪荒 😀👍🏽 done";
  auto ids = tok->encode(text);
  StreamDecoder dec(*tok);
  std::string out;
  bool split_char = false;
  for (int32_t id : ids) {
    split_char |= find_invalid_utf8(tok->token_bytes(id)) != std::string_view::npos;
    std::string piece = dec.push(id);
    EXPECT_EQ(find_invalid_utf8(piece), std::string_view::npos);
    out += piece;
  }
  out += dec.finish();
  EXPECT_TRUE(split_char) << "no token of the sample ends inside a character";
  EXPECT_EQ(out, text);
  // An incomplete character at the end becomes U+FFFD.
  StreamDecoder cut(*tok);
  auto part = tok->encode("量");
  ASSERT_GE(part.size(), 2u);
  EXPECT_EQ(cut.push(part[0]), "");
  EXPECT_EQ(cut.finish(), "\xEF\xBF\xBD");
}

TEST(Bpe, MalformedTokenizerJsonErrors) {
  std::string dir = temp_dir("bad");
  fs::create_directories(dir);
  auto good = nlohmann::json::parse(std::ifstream(kDir + "/bpe/tokenizer.json"));
  auto expect_error = [&](const std::string& text, const std::string& needle) {
    std::string path = dir + "/tokenizer.json";
    std::ofstream(path) << text;
    try {
      load_tokenizer(path);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const moxing::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  auto j = good;
  j.erase("model");
  expect_error(j.dump(), "no \"model\"");
  j = good;
  j["model"]["type"] = "Unigram";
  expect_error(j.dump(), "unsupported model type 'Unigram'");
  j = good;
  j["normalizer"] = {{"type", "NFKC"}};
  expect_error(j.dump(), "unsupported normalizer type 'NFKC'");
  j = good;
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error(j.dump(), "unsupported pre_tokenizer type 'Whitespace'");
  j = good;
  j["model"]["merges"].push_back("zzz qqq");
  expect_error(j.dump(), "token 'zzz' is not in the vocab");
  j = good;
  j["added_tokens"][0]["single_word"] = true;
  expect_error(j.dump(), "single_word");
  std::string text = good.dump();
  expect_error(text.substr(0, text.size() / 2), "not valid JSON");
  try {
    load_tokenizer(dir + "/nothing_here");
    ADD_FAILURE();
  } catch (const moxing::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos) << e.what();
  }
  fs::remove(dir + "/tokenizer.json");
  try {
    load_tokenizer(dir);
    ADD_FAILURE();
  } catch (const moxing::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tokenizer.json, and no vocab.json + merges.txt"),
              std::string::npos)
        << e.what();
  }
  fs::remove_all(dir);
}

TEST(Bpe, EncodeFromSeveralThreads) {
  auto tok = load_tokenizer(kDir + "/bpe");
  std::vector<std::string> texts = corpus();
  for (const auto& c : expected().at("bpe")) texts.push_back(c.at("text"));
  std::vector<std::vector<int32_t>> want;
  {
    auto fresh = load_tokenizer(kDir + "/bpe");
    for (const auto& t : texts) want.push_back(fresh->encode(t));
  }
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) {
        for (size_t i = 0; i < texts.size(); ++i) {
          size_t k = (i + static_cast<size_t>(t) * 7) % texts.size();
          if (tok->encode(texts[k]) != want[k]) ++bad[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
}

TEST(Bpe, CorruptFilesThrowMoxingErrorsOnly) {
  // Truncations and byte changes of real files either load or throw moxing::Error.
  std::string dir = temp_dir("corrupt");
  fs::create_directories(dir);
  std::mt19937 rng(11);
  for (const char* name : {"/bpe/tokenizer.json", "/char/tokenizer.json"}) {
    std::ifstream in(kDir + name, std::ios::binary);
    std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (int k = 0; k < 120; ++k) {
      std::string bad = good;
      if (k % 2 == 0) {
        bad.resize(rng() % good.size());
      } else {
        for (int m = 0; m < 3; ++m)
          bad[rng() % bad.size()] = static_cast<char>("0-9\":,{}[]x\xff"[rng() % 12]);
      }
      std::ofstream(dir + "/tokenizer.json", std::ios::binary) << bad;
      try {
        auto tok = load_tokenizer(dir + "/tokenizer.json");
        tok->decode(tok->encode("probe text 中文 <|endoftext|>"));
      } catch (const moxing::Error&) {
      } catch (const std::exception& e) {
        ADD_FAILURE() << "not a moxing::Error: " << e.what();
      }
    }
  }
  fs::remove_all(dir);
}

TEST(Bpe, TransformersIdentityTemplateLoadsAndOthersAreRefused) {
  // GPT2TokenizerFast.save_pretrained (transformers 5) writes a TemplateProcessing of the text
  // alone; a template that adds special tokens is refused with a clear error
  auto j = nlohmann::json::parse(std::ifstream(kDir + "/bpe/tokenizer.json"));
  auto reference = load_tokenizer(kDir + "/bpe");
  j["post_processor"] = nlohmann::json::parse(
      R"({"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}],
          "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
          "special_tokens": {}})");
  auto tok = tokenizer_from_json(j.dump(), "identity.json");
  const std::string text = "Hello world, don't 春风 123";
  EXPECT_EQ(tok->encode(text), reference->encode(text));
  j["post_processor"]["single"] = nlohmann::json::parse(
      R"([{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
          {"Sequence": {"id": "A", "type_id": 0}}])");
  try {
    tokenizer_from_json(j.dump(), "bos.json");
    FAIL() << "a template adding tokens loaded";
  } catch (const moxing::Error& e) {
    EXPECT_NE(std::string(e.what()).find("adds special tokens"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bos.json"), std::string::npos) << e.what();
  }
}
