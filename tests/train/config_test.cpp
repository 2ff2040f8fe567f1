// Training configs: TOML parsing with defaults, errors listing valid keys, --set overrides,
// TOML and JSON round trips; the models a config names.
#include <gtest/gtest.h>

#include "moxing/moxing.h"
#include "moxing/train/config.h"
#include "moxing/train/models.h"
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
  EXPECT_EQ(c.model.channels, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(c.model.hidden, (std::vector<int64_t>{128}));  // default
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
  EXPECT_TRUE(contains(e, "hidden must be an array of integers")) << e;
  e = error_of([] { Config::from_toml("[trainer]\nepochs = 1\n"); });
  EXPECT_TRUE(contains(e, "unknown section [trainer] (valid: model, data, optim, schedule, train)"))
      << e;
  e = error_of([] { Config::from_toml("[model]\nname = \"resnet\"\n"); });
  EXPECT_TRUE(contains(e, "[model] name 'resnet' is not known (valid: mlp, cnn, gpt)")) << e;
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
  EXPECT_EQ(c.model.hidden, (std::vector<int64_t>{64, 32}));
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
  EXPECT_TRUE(contains(c.to_toml(), "[model]\nname = \"mlp\"\nhidden = []\n")) << c.to_toml();
}

TEST(Models, MlpAndCnnShapes) {
  Generator g(0);
  train::ModelConfig mlp;
  auto m = train::make_model(mlp, {1, 28, 28, 10}, &g);
  EXPECT_EQ(m->num_parameters(), 784 * 128 + 128 + 128 * 10 + 10);
  EXPECT_EQ(m->forward(zeros({2, 1, 28, 28})).shape(), (Shape{2, 10}));

  train::ModelConfig cnn;
  cnn.name = "cnn";
  cnn.channels = {4, 8};
  cnn.hidden = {};
  auto c = train::make_model(cnn, {1, 28, 28, 10}, &g);
  EXPECT_EQ(c->num_parameters(), (4 * 9 + 4) + (8 * 4 * 9 + 8) + (8 * 7 * 7 * 10 + 10));
  EXPECT_EQ(c->forward(zeros({3, 1, 28, 28})).shape(), (Shape{3, 10}));
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
  EXPECT_EQ(c.data.files, (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_NE(c.to_toml().find("files = [\"a.txt\", \"b.txt\"]"), std::string::npos) << c.to_toml();
  EXPECT_EQ(Config::from_toml(c.to_toml()).to_json(), c.to_json());

  std::string e = error_of([] { Config::from_toml("[model]\nname = \"gpt\"\n"); });
  EXPECT_TRUE(contains(e, "goes with [data] name \"text\"")) << e;
  e = error_of([&] { c.set("model.n_head=3"); });
  EXPECT_TRUE(contains(e, "n_embd 32 must be a multiple of n_head 3")) << e;
  e = error_of([&] { c.set("data.files=[1, 2]"); });
  EXPECT_TRUE(contains(e, "must be an array of strings")) << e;
  e = error_of([&] { c.set("data.tokenizer=bpe"); });
  EXPECT_TRUE(contains(e, "needs vocab_size > 256")) << e;
}
