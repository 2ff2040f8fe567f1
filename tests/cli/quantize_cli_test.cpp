// `moxing quantize` on a trained GPT run: a quantized model folder and a GGUF file that
// `moxing info`, `perplexity` (with and without --compute f32) and `generate` read; `moxing eval
// --quantize`; the errors for a bad type and an existing output. Then chat through a template
// (`generate --chat`, `moxing chat` with /reset) and the template carried into a GGUF file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_run.h"

namespace fs = std::filesystem;
using moxing::testing::run_cli;

namespace {

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Trains once for all tests: a 1-layer GPT of width 64 with a byte-level BPE.
class QuantizeCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("moxing_quantize_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream text(dir_ / "c.txt");
    for (int i = 0; i < 200; ++i) {
      text << (i % 3 ? "the cat sat on the mat " : "a dog ran in the park ") << i % 7 << "\n";
    }
    text.close();
    std::ofstream eval(dir_ / "eval.txt");
    eval << "the cat ran in the park 3\na dog sat on the mat 5\n";
    eval.close();
    std::ofstream cfg(dir_ / "lm.toml");
    cfg << "[model]\nname = \"gpt\"\nn_layer = 1\nn_head = 2\nn_embd = 64\nn_positions = 64\n"
           "dropout = 0.0\n[data]\nname = \"text\"\nformat = \"lines\"\ntokenizer = \"bpe\"\n"
           "vocab_size = 300\nval_fraction = 0.2\nbatch_size = 8\nfiles = [\""
        << (dir_ / "c.txt").string()
        << "\"]\n[optim]\nname = \"adamw\"\nlr = 1e-2\n[train]\nsteps = 40\neval_every = 40\n";
    cfg.close();
    train_ = run_cli("train " + (dir_ / "lm.toml").string() + " --out " + run());
  }
  static std::string run() { return (dir_ / "run").string(); }
  static std::string path(const char* name) { return (dir_ / name).string(); }
  static double loss(const std::string& model, const std::string& extra = "") {
    auto r = run_cli("perplexity " + model + " " + path("eval.txt") + " --json " + extra);
    EXPECT_EQ(r.code, 0) << r.out;
    return nlohmann::json::parse(r.out.substr(r.out.find('{'))).at("loss").get<double>();
  }
  static inline fs::path dir_;
  static inline moxing::testing::CliResult train_;
};

TEST_F(QuantizeCli, QuantizedFolderLoadsEverywhereAndScoresCloseToF32) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto q = run_cli("quantize " + run() + " --out " + path("q8") + " --type q8_0");
  ASSERT_EQ(q.code, 0) << q.out;
  EXPECT_TRUE(has(q.out, "layers q8_0")) << q.out;
  EXPECT_TRUE(has(q.out, "bits per weight")) << q.out;
  auto info = run_cli("info " + path("q8"));
  EXPECT_TRUE(has(info.out, "q8_0")) << info.out;
  EXPECT_TRUE(has(info.out, "bits per weight")) << info.out;
  const double f32 = loss(run()), q8 = loss(path("q8")), exact = loss(path("q8"), "--compute f32");
  EXPECT_NEAR(q8, f32, 0.02 * f32);
  EXPECT_NEAR(exact, f32, 0.02 * f32);
  EXPECT_NE(q8, exact);  // the 8-bit activations do change the sums a little
  auto i8 = run_cli("quantize " + run() + " --out " + path("i8") + " --type int8");
  ASSERT_EQ(i8.code, 0) << i8.out;
  EXPECT_NEAR(loss(path("i8")), f32, 0.02 * f32);
  EXPECT_TRUE(has(run_cli("info " + path("i8")).out, "weight_scale"));
  auto g = run_cli("generate " + path("q8") + " --prompt \"the cat\" --greedy --max-new-tokens 5");
  EXPECT_EQ(g.code, 0) << g.out;
  EXPECT_TRUE(has(g.out, "the cat")) << g.out;
}

TEST_F(QuantizeCli, GgufFileHasTheTypesAndScoresLikeTheFolder) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto q = run_cli("quantize " + run() + " --out " + path("m.gguf") + " --type q4_0");
  ASSERT_EQ(q.code, 0) << q.out;
  auto info = run_cli("info " + path("m.gguf"));
  EXPECT_TRUE(has(info.out, "Q4_0")) << info.out;
  EXPECT_TRUE(has(info.out, "general.architecture")) << info.out;
  auto f = run_cli("quantize " + run() + " --out " + path("q4") + " --type q4_0");
  ASSERT_EQ(f.code, 0) << f.out;
  EXPECT_DOUBLE_EQ(loss(path("m.gguf")), loss(path("q4")));
  auto e = run_cli("quantize " + run() + " --out " + path("f32.gguf") + " --type f32");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_NEAR(loss(path("f32.gguf")), loss(run()), 1e-6);
}

TEST_F(QuantizeCli, EvalQuantizesForTheMeasurement) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto q = run_cli("eval " + run() + " --quantize q8_0 --json");
  ASSERT_EQ(q.code, 0) << q.out;
  EXPECT_TRUE(has(q.out, "quantized for this evaluation")) << q.out;
}

TEST_F(QuantizeCli, BadTypeAndExistingOutputAreClearErrors) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto r = run_cli("quantize " + run() + " --out " + path("x") + " --type q5_0");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "--type q5_0: moxing quantizes to q8_0, q4_0, q4_1, q4_k or int8"))
      << r.out;
  fs::create_directories(path("exists"));
  r = run_cli("quantize " + run() + " --out " + path("exists") + " --type q8_0");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "exists; pick another name or pass --force")) << r.out;
  r = run_cli("eval " + run() + " --quantize int3");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "--quantize int3")) << r.out;
}

TEST_F(QuantizeCli, ChatRendersTheTemplateAndKeepsTheConversation) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto q = run_cli("quantize " + run() + " --out " + path("chatty") + " --type q8_0");
  ASSERT_EQ(q.code, 0) << q.out;
  auto none = run_cli("generate " + path("chatty") + " --chat hello");
  EXPECT_NE(none.code, 0);
  EXPECT_TRUE(has(none.out, "has no chat template")) << none.out;
  nlohmann::json config = {
      {"chat_template",
       "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
       "{% if add_generation_prompt %}assistant:{% endif %}"},
      {"eos_token", "<|endoftext|>"}};
  std::ofstream(path("chatty") + "/tokenizer_config.json") << config.dump();
  auto g = run_cli("generate " + path("chatty") +
                   " --chat \"the cat\" --system \"be brief\" --greedy --max-new-tokens 4 --json");
  ASSERT_EQ(g.code, 0) << g.out;
  auto j = nlohmann::json::parse(g.out.substr(g.out.find('{')));
  EXPECT_EQ(j["prompt"], "system: be brief\nuser: the cat\nassistant:");
  auto c =
      run_cli("chat " + path("chatty") +
              " --greedy --max-new-tokens 3 <<'EOF'\nthe cat\n/reset\na dog\n/exit\nnot read\nEOF");
  ASSERT_EQ(c.code, 0) << c.out;
  EXPECT_TRUE(has(c.out, "(conversation reset)")) << c.out;
  // the template travels into a GGUF file written from the folder
  auto w = run_cli("quantize " + path("chatty") + " --out " + path("chatty.gguf") + " --type q8_0");
  ASSERT_EQ(w.code, 0) << w.out;
  auto info = run_cli("info " + path("chatty.gguf"));
  EXPECT_TRUE(has(info.out, "tokenizer.chat_template")) << info.out;
  auto g2 =
      run_cli("generate " + path("chatty.gguf") + " --chat \"the cat\" --max-new-tokens 2 --json");
  ASSERT_EQ(g2.code, 0) << g2.out;
  EXPECT_TRUE(has(g2.out, "user: the cat")) << g2.out;
  auto bad = run_cli("generate " + path("chatty") + " --chat hi --prompt hi");
  EXPECT_NE(bad.code, 0);
  EXPECT_TRUE(has(bad.out, "not both")) << bad.out;
}

}  // namespace
