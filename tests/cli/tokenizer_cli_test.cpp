// Runs `moxing tokenizer train|encode|decode` and `moxing bench-tokenizer` on the tokenizer
// fixtures (tests/fixtures/tokenizers/make_fixtures.py).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_run.h"

namespace {

namespace fs = std::filesystem;

using Result = moxing::testing::CliResult;

Result run(const std::string& args) { return moxing::testing::run_cli(args); }

const std::string kBpe = MOXING_FIXTURE_DIR "/tokenizers/bpe";

std::string temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("moxing_cli_tok_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

}  // namespace

TEST(TokenizerCli, EncodeThenDecode) {
  Result e = run("tokenizer encode " + kBpe + " --json --text 'Hello, 世界! <|endoftext|>'");
  ASSERT_EQ(e.code, 0) << e.out;
  auto j = nlohmann::json::parse(e.out);
  auto ids = j.at("ids").get<std::vector<int>>();
  EXPECT_EQ(j.at("tokens").get<size_t>(), ids.size());
  EXPECT_EQ(ids.back(), 0);
  std::string args;
  for (int id : ids) args.append(" ").append(std::to_string(id));
  Result d = run("tokenizer decode " + kBpe + args + " --json");
  ASSERT_EQ(d.code, 0) << d.out;
  EXPECT_EQ(nlohmann::json::parse(d.out).at("text"), "Hello, 世界! <|endoftext|>");
  Result plain = run("tokenizer encode " + kBpe + " --text 'ab ab'");
  EXPECT_EQ(plain.code, 0);
  EXPECT_EQ(plain.out.find('['), std::string::npos) << plain.out;
}

TEST(TokenizerCli, TrainBpeAndCharThenEncodeAFile) {
  std::string dir = temp_dir("train");
  std::string corpus = dir + "/corpus.txt";
  {
    std::ofstream f(corpus);
    for (int i = 0; i < 50; ++i)
      f << "床前明月光，疑是地上霜。 the moon and the frost " << i << "\n";
  }
  Result b = run("tokenizer train --type bpe --vocab-size 300 --out " + dir + "/bpe " + corpus);
  ASSERT_EQ(b.code, 0) << b.out;
  EXPECT_NE(b.out.find("vocab size 300"), std::string::npos) << b.out;
  EXPECT_TRUE(fs::exists(dir + "/bpe/merges.txt"));
  Result e = run("tokenizer encode " + dir + "/bpe " + corpus + " --json");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_GT(nlohmann::json::parse(e.out).at("tokens").get<int>(), 0);
  Result c =
      run("tokenizer train --type char --special '<|endoftext|>' --out " + dir + "/char " + corpus);
  ASSERT_EQ(c.code, 0) << c.out;
  Result ce = run("tokenizer encode " + dir + "/char --text '月光X'");
  ASSERT_EQ(ce.code, 0) << ce.out;
  Result w =
      run("tokenizer train --type wordpiece --vocab-size 120 --out " + dir + "/wp " + corpus);
  ASSERT_EQ(w.code, 0) << w.out;
  EXPECT_NE(w.out.find("trained a wordpiece tokenizer"), std::string::npos) << w.out;
  EXPECT_TRUE(fs::exists(dir + "/wp/vocab.txt"));
  Result we = run("tokenizer encode " + dir + "/wp --text 'The MOON' --json");
  ASSERT_EQ(we.code, 0) << we.out;
  auto wids = nlohmann::json::parse(we.out).at("ids").get<std::vector<int64_t>>();
  Result wd = run(fmt::format("tokenizer decode {}/wp {}", dir, fmt::join(wids, " ")));
  ASSERT_EQ(wd.code, 0) << wd.out;
  EXPECT_NE(wd.out.find("the moon"), std::string::npos) << wd.out;
  Result bench = run("bench-tokenizer " + dir + "/bpe " + corpus + " --json");
  ASSERT_EQ(bench.code, 0) << bench.out;
  EXPECT_GT(nlohmann::json::parse(bench.out).at("whole_warm_mbps").get<double>(), 0.0);
  fs::remove_all(dir);
}

TEST(TokenizerCli, ErrorsExitNonZero) {
  std::string dir = temp_dir("errors");
  {
    std::ofstream f(dir + "/bad.txt", std::ios::binary);
    f << "fine\xff";
  }
  Result r = run("tokenizer train --out " + dir + "/t " + dir + "/bad.txt");
  EXPECT_NE(r.code, 0);
  std::string want =
      std::string("moxing: error: ").append(dir).append("/bad.txt: invalid UTF-8 at byte 4");
  EXPECT_NE(r.out.find(want), std::string::npos) << r.out;
  Result m = run("tokenizer encode " + dir + " --text hi");
  EXPECT_NE(m.code, 0);
  EXPECT_NE(m.out.find("no tokenizer.json"), std::string::npos) << m.out;
  Result d = run("tokenizer decode " + kBpe + " 5 100000");
  EXPECT_NE(d.code, 0);
  EXPECT_NE(d.out.find("out of range"), std::string::npos) << d.out;
  fs::remove_all(dir);
}
