// Language-model runs: documents from fortune/lines/text files, the split token files and
// their reuse, window sampling, and the causal-lm task on a tiny corpus: the loss falls below the
// unigram baseline, a resumed run ends with the weights of an uninterrupted one, final/ is a model
// folder that loads and generates, and bad files give clear errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "moxing/io/checkpoint.h"
#include "moxing/models/generation.h"
#include "moxing/moxing.h"
#include "moxing/train/lm_data.h"
#include "moxing/train/tasks/causal_lm.h"
#include "moxing/train/trainer.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("moxing_lm_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// A corpus with structure a small model learns fast: each document repeats a short pattern.
std::string corpus() {
  std::string out;
  const char* lines[] = {"abcabcabc", "xyzxyz", "hello world", "春眠不觉晓", "处处闻啼鸟"};
  for (int i = 0; i < 60; ++i) {
    out += lines[i % 5];
    out += i % 3 == 0 ? "\n\x1b[32mcolour\x1b[m\n" : "\n";
    out += "%\n";
  }
  return out;
}

train::TextDataOptions text_options(const train::Config& c) {
  return c.data.options<train::TextDataOptions>();
}

train::Config tiny_config(const fs::path& file) {
  train::Config c = train::Config::from_toml(std::string(R"(
[model]
name = "gpt"
n_layer = 1
n_head = 2
n_embd = 16
n_positions = 16
dropout = 0.0
[data]
name = "text"
files = [")") + file.string() + R"("]
format = "fortune"
tokenizer = "char"
val_fraction = 0.2
batch_size = 8
[optim]
name = "adamw"
lr = 1e-2
weight_decay = 0.1
[schedule]
name = "cosine"
warmup_steps = 5
[train]
steps = 100
eval_every = 50
checkpoint_every = 20
clip_grad_norm = 1.0
best_metric = "val/loss"
log_every = 10
)");
  return c;
}

train::TrainOptions quiet(const fs::path& out) {
  train::TrainOptions o;
  o.out_dir = out.string();
  o.progress = false;
  o.tensorboard = false;
  return o;
}

}  // namespace

TEST(LMData, FortuneLinesAndTextFormats) {
  std::string text = "\x1b[32mfirst\x1b[m entry\n%\n\n  second _\bu_\bn\n%\n%\nthird";
  EXPECT_EQ(train::split_documents(text, "fortune"),
            (std::vector<std::string>{"first entry", "second un", "third"}));
  EXPECT_EQ(train::split_documents("a\n\n b \nc", "lines"),
            (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(train::split_documents("  whole\ntext \n", "text"),
            (std::vector<std::string>{"whole\ntext"}));
  EXPECT_EQ(train::strip_terminal_codes("B\bBo\bol\bld 中\b中"), "Bold 中");
  std::string e = error_of([] { train::split_documents("x", "csv"); });
  EXPECT_TRUE(contains(e, "text format 'csv' is not known")) << e;
}

TEST(LMData, InvalidUtf8AndMissingFilesAreNamed) {
  fs::path d = temp_dir("bad");
  write_file(d / "bad.txt", std::string("good\n%\nbad \xff here"));
  std::string e = error_of([&] { train::read_documents((d / "bad.txt").string(), "fortune"); });
  EXPECT_TRUE(contains(e, "bad.txt")) << e;
  EXPECT_TRUE(contains(e, "byte 11")) << e;
  EXPECT_EQ(train::read_documents((d / "bad.txt").string(), "fortune", true),
            (std::vector<std::string>{"good", "bad \xEF\xBF\xBD here"}));
  e = error_of([&] { train::read_documents((d / "none.txt").string(), "lines"); });
  EXPECT_TRUE(contains(e, "does not exist")) << e;
}

TEST(LMData, TokenFilesAreWrittenOnceAndReused) {
  fs::path d = temp_dir("prepare");
  write_file(d / "c.txt", corpus());
  train::Config c = tiny_config(d / "c.txt");
  train::LMData a = train::prepare_lm_data(c, text_options(c), (d / "run").string(), false);
  EXPECT_EQ(a.train_documents + a.val_documents, 60);
  EXPECT_EQ(a.val_documents, 12);
  ASSERT_NE(a.val, nullptr);
  // every document ends with the end-of-text token
  std::vector<int32_t> ids = a.train->to_vector();
  EXPECT_EQ(std::count(ids.begin(), ids.end(), a.eos_id), a.train_documents);
  // the baseline is the entropy of the validation tokens' own frequencies
  std::vector<int32_t> v = a.val->to_vector();
  std::map<int32_t, double> count;
  for (int32_t t : v) count[t] += 1;
  double h = 0;
  for (auto& [t, n] : count) h -= n / v.size() * std::log(n / v.size());
  EXPECT_NEAR(a.val_unigram_loss, h, 1e-12);

  auto stamp = fs::last_write_time(d / "run" / "data" / "train.bin");
  train::LMData b = train::prepare_lm_data(c, text_options(c), (d / "run").string(), false);
  EXPECT_EQ(fs::last_write_time(d / "run" / "data" / "train.bin"), stamp);
  EXPECT_EQ(b.train->to_vector(), ids);
  EXPECT_EQ(b.val_unigram_loss, a.val_unigram_loss);

  // a token file cut short is an error that says what to do
  fs::resize_file(d / "run" / "data" / "train.bin",
                  fs::file_size(d / "run" / "data" / "train.bin") - 1);
  std::string e =
      error_of([&] { train::prepare_lm_data(c, text_options(c), (d / "run").string(), false); });
  EXPECT_TRUE(contains(e, "not a multiple of 2")) << e;
  EXPECT_TRUE(contains(e, "tokenize the corpus again")) << e;
}

TEST(LMData, WindowsAreDeterministicAndShiftedByOne) {
  fs::path d = temp_dir("windows");
  std::vector<int32_t> ids(100);
  for (int i = 0; i < 100; ++i) ids[i] = i;
  write_token_file((d / "t.bin").string(), ids, 2);
  TokenFile f((d / "t.bin").string(), 2);
  Tensor x, y, x2, y2, x3, y3;
  train::sample_windows(f, 4, 10, 7, 3, x, y);
  train::sample_windows(f, 4, 10, 7, 3, x2, y2);
  train::sample_windows(f, 4, 10, 7, 4, x3, y3);
  EXPECT_EQ(x.shape(), (Shape{4, 10}));
  EXPECT_EQ(x.to_vector<int64_t>(), x2.to_vector<int64_t>());
  EXPECT_NE(x.to_vector<int64_t>(), x3.to_vector<int64_t>());
  std::vector<int64_t> xv = x.to_vector<int64_t>(), yv = y.to_vector<int64_t>();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(yv[i], xv[i] + 1);
  std::string e = error_of([&] { train::sample_windows(f, 1, 100, 0, 0, x, y); });
  EXPECT_TRUE(contains(e, "fewer than one window")) << e;
}

TEST(LMTrainer, LearnsResumesExactlyAndWritesAModelFolder) {
  fs::path d = temp_dir("fit");
  write_file(d / "c.txt", corpus());
  train::Config c = tiny_config(d / "c.txt");

  train::TrainSummary full = train::fit(c, quiet(d / "full"));
  ASSERT_TRUE(full.val_loss && full.baseline_loss);
  EXPECT_LT(*full.val_loss, 0.75 * *full.baseline_loss);
  EXPECT_EQ(full.steps, 100);

  train::TrainOptions part = quiet(d / "resumed");
  part.stop_after_step = 25;
  train::TrainSummary first = train::fit(c, part);
  EXPECT_TRUE(first.interrupted);
  train::TrainOptions rest = quiet(d / "resumed");
  rest.resume = true;
  train::TrainSummary second = train::fit(c, rest);
  EXPECT_EQ(second.steps, 100);
  EXPECT_EQ(*second.val_loss, *full.val_loss);
  EXPECT_EQ(read_text_file((d / "full" / "final" / "model.safetensors").string()),
            read_text_file((d / "resumed" / "final" / "model.safetensors").string()));
  // the resumed metrics.jsonl holds each logged step once (no repeats of the steps after the
  // checkpoint), with every step the uninterrupted run logged plus the one where it stopped
  auto logged = [](const fs::path& run) {
    std::vector<std::pair<std::string, int64_t>> out;
    std::istringstream in(read_text_file((run / "metrics.jsonl").string()));
    std::string line;
    while (std::getline(in, line)) {
      auto r = nlohmann::json::parse(line);
      out.emplace_back(r.at("split").get<std::string>(), r.at("step").get<int64_t>());
    }
    return out;
  };
  auto resumed = logged(d / "resumed"), uninterrupted = logged(d / "full");
  std::map<std::string, int64_t> last;
  for (const auto& [split, step] : resumed) {
    EXPECT_GT(step, last[split]) << split << " step " << step << " logged twice or out of order";
    last[split] = step;
  }
  for (const auto& record : uninterrupted) {
    EXPECT_NE(std::find(resumed.begin(), resumed.end(), record), resumed.end()) << record.second;
  }
  EXPECT_EQ(resumed.size(), uninterrupted.size() + 1);  // + train at step 25, where it stopped

  // final/ is a Hugging Face style model folder: config.json, weights, tokenizer
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"}) {
    EXPECT_TRUE(fs::exists(d / "full" / "final" / f)) << f;
  }
  train::LoadedLM lm = train::load_language_model((d / "full").string());
  EXPECT_EQ(lm.dir, (d / "full" / "final").string());
  std::vector<int32_t> prompt = lm.tokenizer->encode("abc");
  models::SamplingConfig s;
  s.greedy = true;
  s.max_new_tokens = 6;
  std::vector<int32_t> out = models::generate(*lm.lm, prompt, s);
  EXPECT_EQ(lm.tokenizer->decode(out), "abcabc");
}

// The lstm family trains with the same task: no context limit, so [data] max_length gives the
// windows (and its absence is an error saying so); the cache-backed generation completes the
// document and goes on past the training window.
TEST(LMTrainer, RecurrentModelLearnsWithTheSameTask) {
  fs::path d = temp_dir("lstm");
  write_file(d / "c.txt", corpus());
  train::Config c = train::Config::from_toml(std::string(R"(
[model]
name = "lstm"
embedding_size = 24
hidden_size = 48
num_layers = 1
[data]
name = "text"
files = [")") + (d / "c.txt").string() + R"("]
format = "fortune"
tokenizer = "char"
val_fraction = 0.2
batch_size = 8
[optim]
name = "adamw"
lr = 1e-2
weight_decay = 0.0
[train]
steps = 150
eval_every = 150
log_every = 50
)");
  std::string e;
  try {
    train::fit(c, quiet(d / "no_window"));
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("[data] max_length is needed: this model has no context limit"),
            std::string::npos)
      << e;
  c.set("data.max_length=16");
  train::TrainSummary s = train::fit(c, quiet(d / "run"));
  ASSERT_TRUE(s.val_loss && s.baseline_loss);
  EXPECT_LT(*s.val_loss, 0.6 * *s.baseline_loss);
  train::LoadedLM lm = train::load_language_model((d / "run").string());
  EXPECT_EQ(lm.model.family->name, "lstm");
  models::SamplingConfig g;
  g.greedy = true;
  g.max_new_tokens = 24;
  std::vector<int32_t> out = models::generate(*lm.lm, lm.tokenizer->encode("abcabc"), g);
  // "abcabcabc" is a whole document: it ends, and the next one starts; 24 tokens run past the
  // training window of 16 with the state carried along
  ASSERT_EQ(out.size(), 24u);
  EXPECT_EQ(lm.tokenizer->decode({out.begin(), out.begin() + 4}), "abc<|endoftext|>");
}

// Dropout draws from the default generator, which every checkpoint saves: a run interrupted and
// resumed with dropout on ends with the weights of an uninterrupted one, and only the newest
// keep_checkpoints step checkpoints stay.
TEST(LMTrainer, ResumeWithDropoutIsExactAndOldCheckpointsGo) {
  fs::path d = temp_dir("dropout");
  write_file(d / "c.txt", corpus());
  train::Config c = tiny_config(d / "c.txt");
  c.set("model.dropout=0.1");
  c.set("train.steps=30");
  c.set("train.checkpoint_every=5");
  c.set("train.keep_checkpoints=2");
  train::fit(c, quiet(d / "full"));
  train::TrainOptions part = quiet(d / "resumed");
  part.stop_after_step = 12;
  train::fit(c, part);
  train::TrainOptions rest = quiet(d / "resumed");
  rest.resume = true;
  train::fit(c, rest);
  EXPECT_EQ(read_text_file((d / "full" / "final" / "model.safetensors").string()),
            read_text_file((d / "resumed" / "final" / "model.safetensors").string()));
  EXPECT_EQ(train::complete_checkpoints((d / "full").string()),
            (std::vector<std::string>{(d / "full" / "checkpoints" / "step-25").string(),
                                      (d / "full" / "checkpoints" / "step-30").string()}));
}

// A damaged newest checkpoint (truncated weights) is reported and the one before it is used.
TEST(LMTrainer, ResumeSkipsADamagedCheckpoint) {
  fs::path d = temp_dir("damaged");
  write_file(d / "c.txt", corpus());
  train::Config c = tiny_config(d / "c.txt");
  c.set("train.steps=20");
  c.set("train.checkpoint_every=5");
  train::fit(c, quiet(d / "full"));
  train::TrainOptions part = quiet(d / "resumed");
  part.stop_after_step = 10;
  train::fit(c, part);
  fs::path newest = d / "resumed" / "checkpoints" / "step-10";
  fs::resize_file(newest / "model.safetensors", 100);
  train::TrainOptions rest = quiet(d / "resumed");
  rest.resume = true;
  train::TrainSummary s = train::fit(c, rest);
  EXPECT_EQ(s.steps, 20);
  EXPECT_EQ(read_text_file((d / "full" / "final" / "model.safetensors").string()),
            read_text_file((d / "resumed" / "final" / "model.safetensors").string()));
  // every checkpoint damaged: a clear error
  for (const auto& ck : train::complete_checkpoints((d / "resumed").string())) {
    write_file(fs::path(ck) / "trainer_state.json", "{not json");
  }
  std::string e = error_of([&] { train::fit(c, rest); });
  EXPECT_TRUE(contains(e, "every checkpoint in")) << e;
}
