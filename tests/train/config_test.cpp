// Training configs: TOML parsing with defaults, errors listing valid keys, --set overrides,
// TOML and JSON round trips; the models a config names.
#include <gtest/gtest.h>

#include "moxing/moxing.h"
#include "moxing/train/config.h"
#include "moxing/train/lm_data.h"
#include "moxing/train/tasks/image_classification.h"
#include "moxing/train/text_data.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
using train::Config;

TEST(Config, ParsesSectionsAndKeepsDefaults) {
  Config c = Config::from_toml(R"(
[model]
name = "cnn"
channels = [8, 16]
[optim]
name = "sgd"
lr = 0.1
momentum = 0.9
[train]
epochs = 3
clip_grad_norm = 1
skip_nonfinite = true
)");
  EXPECT_EQ(c.model.name, "cnn");
  nlohmann::json m = c.model.resolved();
  EXPECT_EQ(m.at("channels"), nlohmann::json({8, 16}));
  EXPECT_EQ(m.at("hidden"), nlohmann::json({128}));  // default
  EXPECT_EQ(m.at("kernel_size"), 3);
  EXPECT_EQ(c.optim.name, "sgd");
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.1);
  EXPECT_DOUBLE_EQ(c.train.clip_grad_norm, 1.0);  // an integer where a float goes
  EXPECT_TRUE(c.train.skip_nonfinite);
  EXPECT_EQ(c.data.batch_size, 128);
  EXPECT_EQ(c.train.best_metric, "val/accuracy");
}

TEST(Config, UnknownKeysAndWrongTypesListTheValidKeys) {
  std::string e = error_of([] { Config::from_toml("[optim]\nlearning_rate = 0.1\n", "a.toml"); });
  EXPECT_TRUE(contains(e, "a.toml: unknown key 'learning_rate' in [optim]")) << e;
  EXPECT_TRUE(contains(e, "valid: name, lr, weight_decay, beta1")) << e;
  e = error_of([] { Config::from_toml("[train]\nepochs = \"ten\"\n"); });
  EXPECT_TRUE(contains(e, "[train] epochs must be an integer, got a string")) << e;
  e = error_of([] { Config::from_toml("[model]\nhidden = [1.5]\n"); });
  EXPECT_TRUE(contains(e, "[model]: \"hidden\" must be an array of integers, got [1.5]")) << e;
  e = error_of([] { Config::from_toml("[model]\nname = \"mlp\"\nchannels = [4]\n", "m.toml"); });
  EXPECT_TRUE(contains(e,
                       "unknown key 'channels' in [model] for mlp (valid: name, pretrained, "
                       "hidden, hidden_dropout_prob)"))
      << e;
  e = error_of([] { Config::from_toml("[model]\nname = \"cnn\"\nnum_labels = 4\n"); });
  EXPECT_TRUE(contains(e, "[model] num_labels is taken from the data for cnn; remove it")) << e;
  e = error_of([] { Config::from_toml("[trainer]\nepochs = 1\n"); });
  EXPECT_TRUE(contains(e, "unknown section [trainer] (valid: model, data, optim, schedule, train)"))
      << e;
  e = error_of([] { Config::from_toml("[model]\nname = \"resnet\"\n"); });
  // every registered family, sorted, with its aliases
  EXPECT_TRUE(contains(e, "unknown model 'resnet' (moxing knows: ")) << e;
  EXPECT_TRUE(contains(e, ", gpt2 (alias gpt), ")) << e;
  EXPECT_TRUE(contains(e, ", lstm, ")) << e;
  EXPECT_TRUE(contains(e, ", marian (alias seq2seq), ")) << e;
  e = error_of([] { Config::from_toml("[data]\nbatch_size = 0\n"); });
  EXPECT_TRUE(contains(e, "batch_size must be > 0")) << e;
  e = error_of([] { Config::from_toml("[data\n"); });
  EXPECT_TRUE(contains(e, "config:1:")) << e;
}

TEST(Config, SetOverridesOneKey) {
  Config c;
  c.set("optim.lr=3e-4");
  c.set("model.name=cnn");  // a bare word is a string
  c.set("model.hidden=[64, 32]");
  c.set("train.skip_nonfinite=true");
  c.set("data.path=\"/tmp/x y\"");
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4);
  EXPECT_EQ(c.model.name, "cnn");
  EXPECT_EQ(c.model.resolved().at("hidden"), nlohmann::json({64, 32}));
  EXPECT_TRUE(c.train.skip_nonfinite);
  EXPECT_EQ(c.data.path, "/tmp/x y");
  std::string e = error_of([&] { c.set("optim.lrr=1"); });
  EXPECT_TRUE(contains(e, "--set optim.lrr=1: unknown key 'lrr' in [optim] (valid: name, lr")) << e;
  e = error_of([&] { c.set("lr=1"); });
  EXPECT_TRUE(contains(e, "expected section.key=value")) << e;
  e = error_of([&] { c.set("train.epochs=many"); });
  EXPECT_TRUE(contains(e, "[train] epochs must be an integer, got a string")) << e;
}

TEST(Config, TomlAndJsonRoundTrip) {
  Config c;
  c.set("optim.lr=1e-8");
  c.set("optim.weight_decay=10");
  c.set("model.hidden=[]");
  c.set("data.path=\"quote\\\"d\"");
  Config t = Config::from_toml(c.to_toml());
  EXPECT_EQ(t.to_json(), c.to_json()) << c.to_toml();
  Config j = Config::from_json(c.to_json());
  EXPECT_EQ(j.to_json(), c.to_json());
  EXPECT_TRUE(contains(c.to_toml(), "[model]\nname = \"mlp\"\npretrained = \"\"\nhidden = []\n"))
      << c.to_toml();
}

// config.toml and trainer_state.json of runs made before families had their own [model] keys
// hold every family's keys; they still load, keeping the family's own.
TEST(Config, ResolvedConfigsOfOlderVersionsLoad) {
  const char* old_model =
      "[model]\nname = \"{}\"\nhidden = [64]\nchannels = [8]\nkernel_size = 5\nn_layer = 2\n"
      "n_head = 2\nn_embd = 32\nn_positions = 16\ndropout = 0.0\n";
  Config mlp = Config::from_toml(fmt::format(fmt::runtime(old_model), "mlp"));
  EXPECT_EQ(mlp.model.resolved(), nlohmann::json({{"hidden", {64}}, {"hidden_dropout_prob", 0.0}}));
  Config cnn = Config::from_toml(fmt::format(fmt::runtime(old_model), "cnn"));
  EXPECT_EQ(cnn.model.resolved().at("kernel_size"), 5);
  Config gpt = Config::from_toml(fmt::format(fmt::runtime(old_model), "gpt") +
                                 "[data]\nname = \"text\"\nfiles = [\"a.txt\"]\n");
  nlohmann::json g = gpt.model.resolved();
  EXPECT_EQ(g.at("n_embd"), 32);
  EXPECT_EQ(g.at("resid_pdrop"), 0.0);  // "dropout" sets the three dropout probabilities
  EXPECT_EQ(g.at("attn_pdrop"), 0.0);
  EXPECT_FALSE(g.contains("hidden"));
}

TEST(Config, GptNeedsTextDataAndChecksItsKeys) {
  using moxing::train::Config;
  Config c = Config::from_toml(R"(
[model]
name = "gpt"
n_layer = 2
n_head = 2
n_embd = 32
n_positions = 16
[data]
name = "text"
files = ["a.txt", "b.txt"]
format = "fortune"
tokenizer = "char"
)");
  EXPECT_EQ(c.data.options<moxing::train::TextDataOptions>().files,
            (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_NE(c.to_toml().find("files = [\"a.txt\", \"b.txt\"]"), std::string::npos) << c.to_toml();
  EXPECT_EQ(Config::from_toml(c.to_toml()).to_json(), c.to_json());

  std::string e = error_of([] { Config::from_toml("[model]\nname = \"gpt\"\n"); });
  EXPECT_TRUE(contains(e, "[data] name 'fashion-mnist' is not known (valid: text)")) << e;
  e = error_of([&] { c.set("model.n_head=3"); });
  EXPECT_TRUE(contains(e, "n_embd 32 must be a positive multiple of n_head 3")) << e;
  e = error_of([&] { c.set("model.vocab_size=3"); });
  EXPECT_TRUE(contains(e, "[model] vocab_size is taken from the data for gpt2")) << e;
  e = error_of([&] { c.set("data.files=[1, 2]"); });
  EXPECT_TRUE(contains(e, "must be an array of strings")) << e;
  e = error_of([&] { c.set("data.tokenizer=bpe"); });
  EXPECT_TRUE(contains(e, "needs vocab_size > 256")) << e;
}

// [data] keys belong to the data source: each task reads its source's table, refuses the keys
// of other sources (listing its own), and writes its keys with their defaults back.
TEST(Config, DataKeysBelongToTheSource) {
  std::string e = error_of([] { Config::from_toml("[data]\nimage_size = 32\n"); });
  EXPECT_TRUE(contains(e,
                       "unknown key 'image_size' in [data] for fashion-mnist (valid: name, path, "
                       "val_fraction, batch_size, eval_batch_size, num_workers, normalize)"))
      << e;
  Config img = Config::from_toml(
      "[model]\nname = \"cnn\"\n[data]\nname = \"imagefolder\"\npath = \"x\"\nchannels = 3\n");
  EXPECT_EQ(img.data.options<train::ImageFolderOptions>().channels, 3);
  EXPECT_EQ(img.data.options<train::ImageFolderOptions>().image_size, 28);  // default
  EXPECT_TRUE(contains(img.to_toml(), "num_workers = 0\nchannels = 3\nimage_size = 28\n"))
      << img.to_toml();
  EXPECT_EQ(Config::from_toml(img.to_toml()).to_json(), img.to_json());
  EXPECT_EQ(Config::from_json(img.to_json()).to_json(), img.to_json());
  e = error_of([&] { img.set("data.channels=2"); });
  EXPECT_TRUE(contains(e, "[data] channels must be 1 or 3, got 2")) << e;
  e = error_of([&] { img.set("data.text_column=\"t\""); });
  EXPECT_TRUE(contains(e, "unknown key 'text_column' in [data] for imagefolder")) << e;
  EXPECT_EQ(img.data.options<train::ImageFolderOptions>().channels, 3);  // unchanged

  // csv and masked-LM text have tables of their own
  const char* bert = "[model]\nname = \"bert\"\npretrained = \".\"\n";
  Config csv = Config::from_toml(std::string(bert) +
                                 "[data]\nname = \"csv\"\npath = \"d\"\nclass_weights = [1, 2.5]\n"
                                 "labels = [\"a\", \"b\"]\n");
  EXPECT_EQ(csv.data.options<train::CsvDataOptions>().class_weights,
            (std::vector<double>{1.0, 2.5}));
  e = error_of([&] { csv.set("data.mlm_probability=0.2"); });
  EXPECT_TRUE(contains(e, "unknown key 'mlm_probability' in [data] for csv")) << e;
  EXPECT_TRUE(contains(e, "label_column, labels, class_weights, max_length, truncate")) << e;
  e = error_of([&] { csv.set("data.class_weights=[\"x\"]"); });
  EXPECT_TRUE(contains(e, "[data]: \"class_weights\" must be an array of numbers")) << e;
  Config mlm = Config::from_toml(std::string(bert) +
                                 "[data]\nname = \"text\"\nfiles = [\"a.txt\"]\n"
                                 "mlm_probability = 0.2\n[train]\ntask = \"masked-lm\"\n");
  EXPECT_TRUE(contains(mlm.to_toml(), "tokenizer = \"wordpiece\"")) << mlm.to_toml();
  EXPECT_TRUE(contains(mlm.to_toml(), "mlm_probability = 0.2")) << mlm.to_toml();
  e = error_of([&] { mlm.set("data.label_column=\"y\""); });
  EXPECT_TRUE(contains(e, "unknown key 'label_column' in [data] for text")) << e;

  // a resolved config of an older version holds every source's keys: they are ignored
  Config old = Config::from_toml(
      "[data]\nname = \"fashion-mnist\"\nimage_size = 28\nchannels = 1\nnormalize = false\n"
      "files = []\nformat = \"text\"\ntokenizer = \"char\"\nvocab_size = 0\n"
      "invalid_utf8 = \"error\"\ntext_column = \"text\"\nlabels = []\n");
  EXPECT_FALSE(old.data.options<train::FashionMnistOptions>().normalize);
  EXPECT_FALSE(contains(old.to_toml(), "tokenizer")) << old.to_toml();
}
