// The text-encoder tasks on tiny BERTs and tables written here: BERT's masking statistics,
// encoding, padding and length batches, the labelled tables and their errors, and training
// runs through fit() (what `moxing train` calls): a separable sequence classification reaching
// test accuracy 1, a resumed run ending bit-exact with an uninterrupted one, the multi-label and
// regression problem types, and a masked-LM run whose validation loss falls.
#include "moxing/train/text_data.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "model_checks.h"
#include "moxing/io/file.h"
#include "moxing/moxing.h"
#include "moxing/train/trainer.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
using moxing::testing::TempDir;
namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

const std::vector<std::string> kPositive = {"good", "great", "fine", "nice"};
const std::vector<std::string> kNegative = {"bad", "awful", "poor", "dull"};
const std::vector<std::string> kFiller = {"the", "a",    "movie", "film", "plot", "was",
                                          "is",  "very", "quite", "and",  "it"};
const std::vector<std::string> kTopics = {"sport", "music", "food"};
const std::vector<std::string> kLevels = {"low", "mid", "high"};

// A BERT vocab.txt (with [PAD] [UNK] [CLS] [SEP] [MASK] at 0..4) of the words the tables use.
fs::path write_vocab(const fs::path& dir) {
  std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n.\n,\n";
  for (const auto* words : {&kPositive, &kNegative, &kFiller, &kTopics, &kLevels}) {
    for (const std::string& w : *words) vocab += w + "\n";
  }
  fs::create_directories(dir);
  write_file(dir / "vocab.txt", vocab);
  return dir;
}

// Words of a sentence: filler around the words that carry the label.
std::string sentence(std::mt19937& rng, const std::vector<std::string>& key_words) {
  std::vector<std::string> words;
  const size_t n = 2 + rng() % 4;
  for (size_t i = 0; i < n; ++i) words.push_back(kFiller[rng() % kFiller.size()]);
  for (const std::string& k : key_words) words.insert(words.begin() + rng() % words.size(), k);
  std::string s;
  for (const std::string& w : words) s += (s.empty() ? "" : " ") + w;
  return s;
}

// A table of n rows: each a sentence with the word of its label ("pos"/"neg"). Quoted, so
// that a text with a comma would do.
std::string sentiment_table(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string t = "text,label\n";
  for (int i = 0; i < n; ++i) {
    const bool pos = i % 2 == 0;
    const auto& words = pos ? kPositive : kNegative;
    t += fmt::format("\"{}\",{}\n", sentence(rng, {words[rng() % words.size()]}),
                     pos ? "pos" : "neg");
  }
  return t;
}

// Multi-label: one or two topic words; the label cell lists their topics.
std::string topic_table(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string t = "text,label\n";
  for (int i = 0; i < n; ++i) {
    std::set<size_t> on = {rng() % 3};
    if (i % 2 == 1) on.insert(rng() % 3);
    std::vector<std::string> words;
    for (size_t k : on) words.push_back(kTopics[k]);
    std::string cell;
    for (const std::string& w : words) cell += (cell.empty() ? "" : ",") + w;
    t += fmt::format("{},\"{}\"\n", sentence(rng, words), cell);
  }
  return t;
}

// Regression: low / mid / high -> -1 / 0 / 1.
std::string level_table(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string t = "text,score\n";
  for (int i = 0; i < n; ++i) {
    const int k = i % 3;
    t += fmt::format("{},{}.0\n", sentence(rng, {kLevels[static_cast<size_t>(k)]}), k - 1);
  }
  return t;
}

train::Config text_config(const fs::path& data, const fs::path& tokenizer,
                          const std::string& extra_model = "", const std::string& extra_data = "") {
  return train::Config::from_toml(R"(
[model]
name = "bert"
hidden_size = 16
num_hidden_layers = 1
num_attention_heads = 2
intermediate_size = 32
max_position_embeddings = 16
)" + extra_model + R"(
[data]
name = "csv"
path = ")" + data.string() + R"("
tokenizer = ")" + tokenizer.string() +
                                  R"("
batch_size = 16
eval_batch_size = 64
)" + extra_data + R"(
[optim]
name = "adamw"
lr = 3e-3
weight_decay = 0.01
[train]
task = "sequence-classification"
epochs = 16
seed = 3
log_every = 1000
checkpoint_every = 1000
)");
}

train::TrainOptions quiet(const fs::path& out) {
  train::TrainOptions o;
  o.out_dir = out.string();
  o.progress = false;
  o.tensorboard = false;
  return o;
}

std::unique_ptr<tokenizers::Tokenizer> vocab_tokenizer(const std::string& name) {
  TempDir tmp("text_" + name);  // the tokenizer is read whole before it goes
  return tokenizers::load_tokenizer(write_vocab(fs::path(tmp.path) / "tok").string());
}

}  // namespace

// ---- BERT's masking

TEST(MaskTokens, SelectsFifteenPercentSplitEightyTenTenAndSkipsSpecials) {
  const int64_t V = 1000, kMask = 4;
  std::vector<char> special(V, 0);
  for (int i = 0; i < 5; ++i) special[static_cast<size_t>(i)] = 1;
  std::vector<int64_t> original(20000);
  for (size_t i = 0; i < original.size(); ++i) {
    // every tenth position a special token ([UNK], [CLS] or [SEP])
    original[i] = i % 10 == 0 ? static_cast<int64_t>(i / 10 % 3) + 1 : 5 + (i * 7919) % 995;
  }
  std::vector<int64_t> ids = original;
  std::vector<int64_t> labels = train::mask_tokens(ids, special, kMask, V, 0.15, Generator(42));
  ASSERT_EQ(labels.size(), ids.size());
  int64_t candidates = 0, chosen = 0, masked = 0, kept = 0, replaced = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (special[static_cast<size_t>(original[i])]) {
      EXPECT_EQ(labels[i], -100) << i;
      EXPECT_EQ(ids[i], original[i]) << i;
      continue;
    }
    ++candidates;
    if (labels[i] == -100) {
      EXPECT_EQ(ids[i], original[i]) << "an unchosen token changed at " << i;
      continue;
    }
    ++chosen;
    EXPECT_EQ(labels[i], original[i]) << i;
    EXPECT_GE(ids[i], 0);
    EXPECT_LT(ids[i], V);
    if (ids[i] == kMask) {
      ++masked;
    } else if (ids[i] == original[i]) {
      ++kept;
    } else {
      ++replaced;
    }
  }
  ASSERT_EQ(candidates, 18000);
  // bounds are about 4 standard deviations of the binomial counts
  EXPECT_NEAR(static_cast<double>(chosen) / candidates, 0.15, 0.011);
  EXPECT_NEAR(static_cast<double>(masked) / chosen, 0.8, 0.03);
  EXPECT_NEAR(static_cast<double>(replaced) / chosen, 0.1, 0.025);
  EXPECT_NEAR(static_cast<double>(kept) / chosen, 0.1, 0.025);

  // the draws are fixed by the generator's seed
  std::vector<int64_t> again = original;
  EXPECT_EQ(train::mask_tokens(again, special, kMask, V, 0.15, Generator(42)), labels);
  EXPECT_EQ(again, ids);
  std::vector<int64_t> other = original;
  EXPECT_NE(train::mask_tokens(other, special, kMask, V, 0.15, Generator(43)), labels);
}

TEST(MaskTokens, AtLeastOneTargetWhenAnyTokenCanBeChosen) {
  std::vector<char> special = {1, 1, 1, 1, 1, 0, 0, 0};
  std::vector<int64_t> ids = {2, 6, 7, 3};  // [CLS] x y [SEP]
  std::vector<int64_t> labels = train::mask_tokens(ids, special, 4, 8, 1e-9, Generator(1));
  EXPECT_EQ(labels, (std::vector<int64_t>{-100, 6, -100, -100}));
  EXPECT_EQ(ids, (std::vector<int64_t>{2, 4, 7, 3}));
  // nothing but special tokens: nothing to predict
  std::vector<int64_t> only = {2, 3, 0, 0};
  labels = train::mask_tokens(only, special, 4, 8, 0.5, Generator(1));
  EXPECT_EQ(labels, (std::vector<int64_t>(4, -100)));
  EXPECT_EQ(only, (std::vector<int64_t>{2, 3, 0, 0}));
}

// ---- encoding, padding, batches

TEST(TextInputs, EncodeAddsSpecialsTypesAndTruncates) {
  auto tok = vocab_tokenizer("encode");
  const int32_t cls = *tok->token_to_id("[CLS]"), sep = *tok->token_to_id("[SEP]");
  const int32_t good = *tok->token_to_id("good"), movie = *tok->token_to_id("movie"),
                plot = *tok->token_to_id("plot"), bad = *tok->token_to_id("bad");
  EXPECT_EQ(train::pad_token_id(*tok), 0);
  bool cut = true;
  tokenizers::Encoding e = train::encode_text(*tok, "Good movie", std::nullopt, 0, &cut);
  EXPECT_FALSE(cut);
  EXPECT_EQ(e.ids, (std::vector<int32_t>{cls, good, movie, sep}));
  EXPECT_EQ(e.token_type_ids, (std::vector<int32_t>{0, 0, 0, 0}));
  EXPECT_EQ(e.attention_mask, (std::vector<int32_t>{1, 1, 1, 1}));
  e = train::encode_text(*tok, "good movie", std::string_view("bad plot"), 0, &cut);
  EXPECT_EQ(e.ids, (std::vector<int32_t>{cls, good, movie, sep, bad, plot, sep}));
  EXPECT_EQ(e.token_type_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1}));
  // longest first: the longer text loses tokens first, the specials stay
  e = train::encode_text(*tok, "good movie plot", std::string_view("bad"), 6, &cut);
  EXPECT_TRUE(cut);
  EXPECT_EQ(e.ids, (std::vector<int32_t>{cls, good, movie, sep, bad, sep}));
  // exactly max_length is not cut
  e = train::encode_text(*tok, "good movie", std::nullopt, 4, &cut);
  EXPECT_FALSE(cut);
  EXPECT_EQ(e.ids.size(), 4u);
}

TEST(TextInputs, TokenizersWithoutSpecialsConcatenateAndCutTheLonger) {
  auto tok = tokenizers::load_tokenizer(std::string(MOXING_FIXTURE_DIR) + "/tokenizers/char");
  bool cut = false;
  tokenizers::Encoding e = train::encode_text(*tok, "abcd", std::string_view("xy"), 4, &cut);
  EXPECT_TRUE(cut);
  std::vector<int32_t> a = tok->encode("ab"), b = tok->encode("xy");
  a.insert(a.end(), b.begin(), b.end());
  EXPECT_EQ(e.ids, a);
  EXPECT_EQ(e.token_type_ids, (std::vector<int32_t>{0, 0, 1, 1}));
  EXPECT_EQ(e.attention_mask, (std::vector<int32_t>{1, 1, 1, 1}));
}

TEST(TextInputs, PadBatchPadsRightWithMaskAndTypes) {
  auto tok = vocab_tokenizer("pad");
  std::vector<tokenizers::Encoding> all = {
      train::encode_text(*tok, "good", std::nullopt, 0),
      train::encode_text(*tok, "a good movie", std::string_view("bad"), 0),
      train::encode_text(*tok, "the plot", std::nullopt, 0)};
  const int32_t pad = 0;
  std::vector<int64_t> idx = {2, 0, 1};
  models::EncoderInputs in = train::pad_batch(all, idx, pad);
  ASSERT_EQ(in.input_ids.shape(), (Shape{3, 7}));
  EXPECT_EQ(in.token_type_ids.shape(), (Shape{3, 7}));
  EXPECT_EQ(in.attention_mask.shape(), (Shape{3, 7}));
  EXPECT_EQ(in.input_ids.dtype(), DType::i64);
  std::vector<int64_t> ids = in.input_ids.to_vector<int64_t>(),
                       types = in.token_type_ids.to_vector<int64_t>(),
                       mask = in.attention_mask.to_vector<int64_t>();
  for (size_t r = 0; r < idx.size(); ++r) {
    const tokenizers::Encoding& e = all[static_cast<size_t>(idx[r])];
    for (size_t t = 0; t < 7; ++t) {
      const bool real = t < e.ids.size();
      EXPECT_EQ(ids[r * 7 + t], real ? e.ids[t] : pad) << r << "," << t;
      EXPECT_EQ(types[r * 7 + t], real ? e.token_type_ids[t] : 0) << r << "," << t;
      EXPECT_EQ(mask[r * 7 + t], real ? 1 : 0) << r << "," << t;
    }
  }
  // the span overload pads to the longest of its own
  std::vector<tokenizers::Encoding> two = {all[0], all[2]};
  EXPECT_EQ(train::pad_batch(std::span<const tokenizers::Encoding>(two), 0).input_ids.shape(),
            (Shape{2, 4}));
  std::string e = error_of([&] { train::pad_batch(all, std::vector<int64_t>{}, 0); });
  EXPECT_TRUE(contains(e, "no texts")) << e;
}

TEST(TextInputs, LengthBatchesSortByLengthUnderBothLimits) {
  std::vector<tokenizers::Encoding> all;
  for (int len : {5, 1, 9, 3, 3, 7, 2, 8}) {
    tokenizers::Encoding e;
    e.ids.assign(static_cast<size_t>(len), 1);
    all.push_back(e);
  }
  std::vector<std::vector<int64_t>> b = train::length_batches(all, 3);
  EXPECT_EQ(b, (std::vector<std::vector<int64_t>>{{1, 6, 3}, {4, 0, 5}, {7, 2}}));
  // at most max_tokens padded positions: (n + 1) * len may not pass 10
  b = train::length_batches(all, 100, 10);
  std::vector<int64_t> seen;
  for (const auto& batch : b) {
    size_t longest = 0;
    for (int64_t i : batch) longest = std::max(longest, all[static_cast<size_t>(i)].ids.size());
    EXPECT_TRUE(batch.size() == 1 || batch.size() * longest <= 10) << batch.size();
    seen.insert(seen.end(), batch.begin(), batch.end());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(b.front(), (std::vector<int64_t>{1, 6, 3}));  // 1, 2, 3 tokens: 3 * 3 <= 10
  EXPECT_EQ(b.back(), (std::vector<int64_t>{2}));         // the longest alone
}

// ---- labelled tables

TEST(LabelledData, ReadsSplitsLabelsPairsAndTargets) {
  TempDir tmp_tables("text_tables");
  fs::path d = tmp_tables.path;
  write_file(d / "train.csv", "text,pair,label\nhi,there,pos\n\"a, b\",c,neg\nx,y,pos\n");
  write_file(d / "dev.tsv", "text\tpair\tlabel\nq\tr\tneg\n");
  write_file(d / "test.csv", "text,pair,label\nt,u, pos \n");
  train::Config c = text_config(d, d, "", "text_pair_column = \"pair\"");
  train::LabelledData data = train::load_labelled_data(c, train::kSingleLabel);
  EXPECT_EQ(data.labels, (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(data.train.texts, (std::vector<std::string>{"hi", "a, b", "x"}));
  EXPECT_EQ(data.train.pairs, (std::vector<std::string>{"there", "c", "y"}));
  EXPECT_EQ(data.train.labels, (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(data.train.lines, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(data.val.path, (d / "dev.tsv").string());
  EXPECT_EQ(data.val.labels, (std::vector<int64_t>{0}));
  EXPECT_EQ(data.test.labels, (std::vector<int64_t>{1}));  // the cell is trimmed

  // [data] labels fixes the ids
  c = text_config(d, d, "", "text_pair_column = \"pair\"\nlabels = [\"pos\", \"neg\"]");
  EXPECT_EQ(train::load_labelled_data(c, train::kSingleLabel).train.labels,
            (std::vector<int64_t>{0, 1, 0}));

  // multi-label cells list labels; regression cells are numbers
  write_file(d / "multi.csv", "text,label\na,\"x, y\"\nb,y\nc,\n");
  c = text_config(d / "multi.csv", d, "", "val_fraction = 0.0");
  train::LabelledData m = train::load_labelled_data(c, train::kMultiLabel);
  EXPECT_EQ(m.labels, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(m.train.targets, (std::vector<std::vector<float>>{{1, 1}, {0, 1}, {0, 0}}));
  write_file(d / "reg.csv", "text,label\na,1.5\nb,-2e-1\n");
  c = text_config(d / "reg.csv", d, "", "val_fraction = 0.0");
  train::LabelledData r = train::load_labelled_data(c, train::kRegression);
  EXPECT_EQ(r.train.targets, (std::vector<std::vector<float>>{{1.5f}, {-0.2f}}));
}

TEST(LabelledData, ValidationSplitIsASeededShareOfOneTable) {
  TempDir tmp_one_table("text_one_table");
  fs::path d = tmp_one_table.path;
  write_file(d / "all.csv", sentiment_table(40, 1));
  train::Config c = text_config(d / "all.csv", d, "", "val_fraction = 0.25");
  train::LabelledData a = train::load_labelled_data(c, train::kSingleLabel);
  EXPECT_EQ(a.train.size(), 30);
  EXPECT_EQ(a.val.size(), 10);
  EXPECT_EQ(a.test.size(), 0);
  std::set<int64_t> lines(a.train.lines.begin(), a.train.lines.end());
  lines.insert(a.val.lines.begin(), a.val.lines.end());
  EXPECT_EQ(lines.size(), 40u);  // every row once
  EXPECT_EQ(train::load_labelled_data(c, train::kSingleLabel).val.lines, a.val.lines);
  c.set("train.seed=4");
  EXPECT_NE(train::load_labelled_data(c, train::kSingleLabel).val.lines, a.val.lines);
}

TEST(LabelledData, BadTablesAreErrorsNamingFileAndLine) {
  TempDir tmp_bad_tables("text_bad_tables");
  fs::path d = tmp_bad_tables.path;
  auto error_for = [&](const std::string& table, const std::string& extra = "",
                       const std::string& problem = train::kSingleLabel) {
    write_file(d / "t.csv", table);
    train::Config c = text_config(d / "t.csv", d, "", "val_fraction = 0.0\n" + extra);
    return error_of([&] { train::load_labelled_data(c, problem); });
  };
  const std::string t = (d / "t.csv").string();
  std::string e = error_for("text,label\na,pos\nb,meh\nc,neg\n", "labels = [\"neg\", \"pos\"]");
  EXPECT_TRUE(contains(e, t + ":3: the label 'meh' is not in the label set (neg, pos)")) << e;
  e = error_for("text,label\na,x\nb,\"x,z\"\n", "labels = [\"x\", \"y\"]", train::kMultiLabel);
  EXPECT_TRUE(contains(e, t + ":3: the label 'z' is not in the label set (x, y)")) << e;
  e = error_for("sentence,label\na,pos\n");
  EXPECT_TRUE(contains(e, t + ": no [data] text_column 'text' (the columns are: sentence, label)"))
      << e;
  e = error_for("text,y\na,pos\n");
  EXPECT_TRUE(contains(e, "no [data] label_column 'label'")) << e;
  e = error_for("text,label\na,pos\n \t,neg\n");
  EXPECT_TRUE(contains(e, t + ":3: the text (text) is empty")) << e;
  e = error_for("text,label\na,pos\nb,\n", "labels = [\"neg\", \"pos\"]");
  EXPECT_TRUE(contains(e, t + ":3: the label is empty")) << e;
  e = error_for("text,label\na,pos\nb\xc3,neg\n");
  EXPECT_TRUE(contains(e, t + ":3: invalid UTF-8")) << e;
  e = error_for("text,label\na,pos\nb,pos\n");
  EXPECT_TRUE(contains(e, "has 1 label(s) (pos); classification needs two or more")) << e;
  // one class: a single logit whose cross-entropy is always 0
  e = error_for("text,label\na,pos\nb,pos\n", "labels = [\"pos\"]");
  EXPECT_TRUE(contains(e,
                       "config: [data] labels lists one label (pos); single-label "
                       "classification needs two or more"))
      << e;
  EXPECT_EQ(error_for("text,label\na,pos\nb,\n", "labels = [\"pos\"]", train::kMultiLabel), "");
  e = error_for("text,label\n");
  EXPECT_TRUE(contains(e, "the table has a header but no examples")) << e;
  e = error_for("text,label\na,1\nb,lots\n", "", train::kRegression);
  EXPECT_TRUE(contains(e, t + ":3: the value 'lots' is not a number")) << e;
  e = error_for("text,label\na,pos\nb,neg\n", "labels = [\"pos\", \"neg\", \"pos\"]");
  EXPECT_TRUE(contains(e, "[data] labels lists a label twice")) << e;
  e = error_for("text,label\na,pos\nb,neg\n", "class_weights = [1.0, 2.0, 3.0]");
  EXPECT_TRUE(contains(e, "class_weights has 3 weights for 2 labels")) << e;

  // a validation label the training split does not have names the validation file
  TempDir tmp_bad_split("text_bad_split");
  fs::path folder = tmp_bad_split.path;
  write_file(folder / "train.csv", "text,label\na,pos\nb,neg\n");
  write_file(folder / "validation.csv", "text,label\nc,pos\nd,neutral\n");
  e = error_of(
      [&] { train::load_labelled_data(text_config(folder, folder), train::kSingleLabel); });
  EXPECT_TRUE(contains(e, (folder / "validation.csv").string() +
                              ":3: the label 'neutral' is not in the label set (neg, pos)"))
      << e;
  fs::remove(folder / "train.csv");
  e = error_of(
      [&] { train::load_labelled_data(text_config(folder, folder), train::kSingleLabel); });
  EXPECT_TRUE(contains(e, "no train.csv or train.tsv in the folder")) << e;
  e = error_of([&] {
    train::load_labelled_data(text_config(folder / "none", folder), train::kSingleLabel);
  });
  EXPECT_TRUE(contains(e, "does not exist")) << e;
}

TEST(LabelledData, LongTextsAreCutOrNamed) {
  TempDir tmp_long("text_long");
  fs::path d = tmp_long.path;
  auto tok = tokenizers::load_tokenizer(write_vocab(d / "tok").string());
  write_file(d / "t.csv", "text,label\ngood,pos\n\"the movie was very good\",pos\nbad,neg\n");
  train::Config c = text_config(d / "t.csv", d / "tok", "", "val_fraction = 0.0");
  train::LabelledData data = train::load_labelled_data(c, train::kSingleLabel);
  data.train.encode(*tok, 5, true);
  EXPECT_EQ(data.train.truncated, 1);
  EXPECT_EQ(data.train.encodings[1].ids.size(), 5u);
  EXPECT_EQ(data.train.encodings[0].ids.size(), 3u);
  std::string e = error_of([&] { data.train.encode(*tok, 5, false); });
  EXPECT_TRUE(contains(e, (d / "t.csv").string() + ":3: the text is longer than [data] "
                                                   "max_length = 5 tokens"))
      << e;
}

// ---- training runs

TEST(SequenceClassification, SeparableDataReachesTestAccuracyOne) {
  TempDir tmp_cls("text_cls");
  fs::path d = tmp_cls.path;
  write_vocab(d / "tok");
  write_file(d / "data" / "train.csv", sentiment_table(64, 1));
  write_file(d / "data" / "validation.csv", sentiment_table(16, 2));
  write_file(d / "data" / "test.csv", sentiment_table(20, 3));
  train::Config c = text_config(d / "data", d / "tok", "hidden_dropout_prob = 0.0");
  train::TrainSummary s = train::fit(c, quiet(d / "run"));
  EXPECT_EQ(s.steps, 64);
  EXPECT_EQ(s.test_metrics.at("accuracy"), 1.0);
  EXPECT_EQ(s.test_metrics.at("f1_macro"), 1.0);
  EXPECT_EQ(s.val_metrics.at("accuracy"), 1.0);
  EXPECT_LT(s.test_metrics.at("loss"), 0.1);
  EXPECT_EQ(s.best_metric, "val/accuracy");
  EXPECT_EQ(*s.best_value, 1.0);
  // test_metrics.json: the report with its confusion matrix and the label names
  nlohmann::json j =
      nlohmann::json::parse(read_text_file((d / "run" / "test_metrics.json").string()));
  EXPECT_EQ(j["labels"], (nlohmann::json{"neg", "pos"}));
  EXPECT_EQ(j["confusion_matrix"], (nlohmann::json{{10, 0}, {0, 10}}));
  EXPECT_EQ(j["accuracy"], 1.0);
  // final/ is a classifier folder that keeps the label names and the tokenizer
  train::LoadedRun run = train::load_run((d / "run").string());
  auto& model = run.model.expect<models::SequenceClassifier>("a classifier");
  EXPECT_EQ(model.labels(), (std::vector<std::string>{"neg", "pos"}));
  EXPECT_TRUE(fs::exists(d / "run" / "final" / "vocab.txt"));
}

// The lstm family is a sequence classifier too: the same task, tables and tokenizer.
TEST(SequenceClassification, RecurrentClassifierReachesTestAccuracyOne) {
  TempDir tmp_cls("text_cls_lstm");
  fs::path d = tmp_cls.path;
  write_vocab(d / "tok");
  write_file(d / "data" / "train.csv", sentiment_table(64, 1));
  write_file(d / "data" / "validation.csv", sentiment_table(16, 2));
  write_file(d / "data" / "test.csv", sentiment_table(20, 3));
  train::Config c = train::Config::from_toml(R"(
[model]
name = "lstm"
embedding_size = 16
hidden_size = 16
num_layers = 1
bidirectional = true
[data]
name = "csv"
path = ")" + (d / "data").string() + R"("
tokenizer = ")" + (d / "tok").string() + R"("
max_length = 32
batch_size = 16
[optim]
name = "adamw"
lr = 1e-2
[train]
task = "sequence-classification"
epochs = 12
seed = 3
log_every = 1000
)");
  train::TrainSummary s = train::fit(c, quiet(d / "run"));
  EXPECT_EQ(s.test_metrics.at("accuracy"), 1.0);
  train::LoadedRun run = train::load_run((d / "run").string());
  EXPECT_EQ(run.model.architecture, "LSTMForSequenceClassification");
  EXPECT_EQ(run.model.expect<models::SequenceClassifier>("a classifier").labels(),
            (std::vector<std::string>{"neg", "pos"}));
}

// A run stopped mid-epoch and resumed ends with the weights of an uninterrupted run: the batch
// order is a permutation keyed by (seed, epoch) and dropout draws come from the saved streams.
TEST(SequenceClassification, ResumeIsBitExact) {
  TempDir tmp_cls_resume("text_cls_resume");
  fs::path d = tmp_cls_resume.path;
  write_vocab(d / "tok");
  write_file(d / "data" / "train.csv", sentiment_table(40, 4));
  write_file(d / "data" / "validation.csv", sentiment_table(8, 5));
  train::Config c = text_config(d / "data", d / "tok", "hidden_dropout_prob = 0.1");
  c.set("train.epochs=4");
  c.set("data.batch_size=12");  // 4 steps an epoch, the last one short
  train::TrainSummary full = train::fit(c, quiet(d / "full"));
  EXPECT_EQ(full.steps, 16);
  train::TrainOptions part = quiet(d / "resumed");
  part.stop_after_step = 6;
  EXPECT_TRUE(train::fit(c, part).interrupted);
  train::TrainOptions rest = quiet(d / "resumed");
  rest.resume = true;
  train::TrainSummary second = train::fit(c, rest);
  EXPECT_EQ(second.steps, 16);
  EXPECT_EQ(second.val_metrics.at("loss"), full.val_metrics.at("loss"));
  const std::string a = read_text_file((d / "full" / "final" / "model.safetensors").string());
  EXPECT_EQ(a, read_text_file((d / "resumed" / "final" / "model.safetensors").string()));
  // and the runs differ from a run with another seed (the check can fail)
  c.set("train.seed=9");
  train::fit(c, quiet(d / "other"));
  EXPECT_NE(a, read_text_file((d / "other" / "final" / "model.safetensors").string()));
}

TEST(SequenceClassification, MultiLabelTrainsAndReportsItsMetrics) {
  TempDir tmp_multi("text_multi");
  fs::path d = tmp_multi.path;
  write_vocab(d / "tok");
  write_file(d / "data" / "train.csv", topic_table(96, 6));
  write_file(d / "data" / "test.csv", topic_table(24, 7));
  train::Config c = text_config(d / "data", d / "tok",
                                "problem_type = \"multi_label_classification\"\n"
                                "hidden_dropout_prob = 0.0",
                                "val_fraction = 0.0");
  // wider than the others: at width 16 this model (and transformers' alike) settles on one
  // topic per text (f1_micro 0.79, exact matches 0.42)
  c.set("model.hidden_size=32");
  c.set("model.num_attention_heads=4");
  c.set("data.batch_size=8");
  c.set("optim.lr=5e-3");
  c.set("train.epochs=40");
  train::TrainSummary s = train::fit(c, quiet(d / "run"));
  for (const char* k :
       {"loss", "accuracy", "f1_micro", "f1_macro", "precision_macro", "recall_macro"}) {
    EXPECT_TRUE(s.test_metrics.count(k)) << k;
  }
  EXPECT_GE(s.test_metrics.at("f1_micro"), 0.9);
  EXPECT_GE(s.test_metrics.at("accuracy"), 0.75);
  nlohmann::json j =
      nlohmann::json::parse(read_text_file((d / "run" / "test_metrics.json").string()));
  EXPECT_EQ(j["labels"], (nlohmann::json{"food", "music", "sport"}));
  EXPECT_FALSE(j.contains("confusion_matrix"));
  train::LoadedRun run = train::load_run((d / "run").string());
  EXPECT_EQ(run.model.expect<models::SequenceClassifier>("a classifier").num_labels(), 3);
}

TEST(SequenceClassification, RegressionTrainsAndReportsItsMetrics) {
  TempDir tmp_regression("text_regression");
  fs::path d = tmp_regression.path;
  write_vocab(d / "tok");
  write_file(d / "data" / "train.csv", level_table(72, 8));
  write_file(d / "data" / "test.csv", level_table(18, 9));
  train::Config c =
      text_config(d / "data", d / "tok", "problem_type = \"regression\"\nhidden_dropout_prob = 0.0",
                  "label_column = \"score\"\nval_fraction = 0.0");
  train::TrainSummary s = train::fit(c, quiet(d / "run"));
  for (const char* k : {"loss", "mse", "mae", "r2"}) EXPECT_TRUE(s.test_metrics.count(k)) << k;
  EXPECT_FALSE(s.test_metrics.count("accuracy"));
  EXPECT_NEAR(s.test_metrics.at("loss"), s.test_metrics.at("mse"), 1e-6);
  EXPECT_LT(s.test_metrics.at("mse"), 0.05);
  EXPECT_GT(s.test_metrics.at("r2"), 0.9);
  train::LoadedRun run = train::load_run((d / "run").string());
  EXPECT_EQ(run.model.expect<models::SequenceClassifier>("a regressor").num_labels(), 1);
}

TEST(MaskedLM, ValidationLossFalls) {
  TempDir tmp_mlm("text_mlm");
  fs::path d = tmp_mlm.path;
  write_vocab(d / "tok");
  // documents of 16 words of one topic: a masked word's topic shows in its neighbours. (A
  // model this small learns word order slowly, in moxing and in transformers alike.)
  std::mt19937 rng(10);
  std::string text;
  const std::vector<std::string>* topics[] = {&kPositive, &kNegative, &kTopics, &kLevels};
  for (int i = 0; i < 200; ++i) {
    const auto& words = *topics[i % 4];
    for (int w = 0; w < 16; ++w) text += (w > 0 ? " " : "") + words[rng() % words.size()];
    text += "\n";
  }
  write_file(d / "corpus.txt", text);
  train::Config c = train::Config::from_toml(R"(
[model]
name = "bert"
hidden_size = 16
num_hidden_layers = 1
num_attention_heads = 2
intermediate_size = 32
max_position_embeddings = 16
hidden_dropout_prob = 0.0
initializer_range = 0.2
[data]
name = "text"
files = [")" + (d / "corpus.txt").string() +
                                             R"("]
format = "lines"
tokenizer = ")" + (d / "tok").string() + R"("
max_length = 16
batch_size = 16
val_fraction = 0.2
[optim]
name = "adamw"
lr = 3e-3
weight_decay = 0.01
[train]
task = "masked-lm"
steps = 400
eval_every = 100
seed = 2
log_every = 1000
checkpoint_every = 1000
)");
  train::TrainSummary s = train::fit(c, quiet(d / "run"));
  std::vector<double> val;
  std::istringstream in(read_text_file((d / "run" / "metrics.jsonl").string()));
  std::string line;
  while (std::getline(in, line)) {
    auto r = nlohmann::json::parse(line);
    if (r.at("split") == "val") val.push_back(r.at("loss").get<double>());
  }
  ASSERT_EQ(val.size(), 4u);
  ASSERT_TRUE(s.val_loss.has_value());
  EXPECT_EQ(*s.val_loss, val.back());
  // the entropy of the words alone (a model that ignores the context): half the documents
  // draw from 4 words, half from 3
  const double unigram = 0.5 * std::log(16.0) + 0.5 * std::log(12.0);
  EXPECT_LT(val.back(), 0.8 * val.front()) << "first " << val.front() << ", last " << val.back();
  EXPECT_LT(val.back(), 0.7 * unigram) << val.back();
  EXPECT_GT(s.val_metrics.at("accuracy"), 0.2);  // 3 times a uniform guess
}
