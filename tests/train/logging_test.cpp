// metrics.jsonl lines and their TensorBoard mirror (one flushed JSON object per line, numeric
// fields as "<split>/<key>" scalars at the record's step, appends continue a resumed run), and
// progress lines (plain: one every plain_every steps; terminal: one line redrawn with '\r').
#include "moxing/train/logging.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <tuple>

#include "moxing/core/error.h"
#include "moxing/train/progress.h"

using namespace moxing;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct Scalar {
  std::string tag;
  int64_t step;
  float value;
  bool operator==(const Scalar&) const = default;
};

uint64_t varint(const std::string& b, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    auto byte = static_cast<uint8_t>(b.at(pos++));
    v |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return v;
  }
}

// The scalar events of every event file in dir. Assumes the layout TfEventsWriter writes
// (tfevents_test checks it field by field).
std::vector<Scalar> read_scalars(const fs::path& dir) {
  std::vector<Scalar> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().find("tfevents") == std::string::npos) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (size_t pos = 0; pos < bytes.size();) {
      uint64_t n;
      std::memcpy(&n, bytes.data() + pos, 8);
      std::string event = bytes.substr(pos + 12, n);
      pos += 12 + n + 4;
      size_t p = 9;                       // after wall_time
      if (event.at(p) != 0x10) continue;  // the file_version record
      ++p;
      Scalar s;
      s.step = static_cast<int64_t>(varint(event, p));
      p += 4;  // Summary key and length, Value key and length (all short here)
      ++p;     // tag key
      uint64_t tag_len = varint(event, p);
      s.tag = event.substr(p, tag_len);
      p += tag_len + 1;
      std::memcpy(&s.value, event.data() + p, 4);
      out.push_back(s);
    }
  }
  return out;
}

std::vector<std::string> lines_of(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class MetricsLoggerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("moxing_logging_test_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

TEST_F(MetricsLoggerTest, WritesOneFlushedLinePerRecord) {
  MetricsLogger logger(dir_.string(), false);
  logger.log({{"split", "train"}, {"epoch", 1}, {"step", 10}, {"loss", 0.5}});
  // Visible before the logger is closed.
  auto lines = lines_of(dir_ / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(json::parse(lines[0]),
            (json{{"split", "train"}, {"epoch", 1}, {"step", 10}, {"loss", 0.5}}));
  logger.log({{"split", "val"}, {"epoch", 1}, {"step", 10}, {"accuracy", 0.75}});
  EXPECT_EQ(lines_of(dir_ / "metrics.jsonl").size(), 2u);
  EXPECT_EQ(logger.tensorboard(), nullptr);
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find("tfevents"), std::string::npos);
  }
}

TEST_F(MetricsLoggerTest, MirrorsNumericFieldsToTensorBoard) {
  {
    MetricsLogger logger(dir_.string());
    logger.log({{"split", "train"},
                {"epoch", 1},
                {"step", 10},
                {"loss", 0.5},
                {"lr", 0.001},
                {"note", "text is not mirrored"},
                {"finite", true}});
    logger.log({{"split", "val"},
                {"epoch", 1},
                {"step", 20},
                {"accuracy", 0.75},
                {"per_class", {{"cat", 0.5}}}});
    logger.log({{"samples_per_s", 1500}});
  }
  auto scalars = read_scalars(dir_);
  std::vector<Scalar> expected = {{"train/loss", 10, 0.5f},
                                  {"train/lr", 10, 0.001f},
                                  {"val/accuracy", 20, 0.75f},
                                  {"val/per_class/cat", 20, 0.5f},
                                  {"samples_per_s", 20, 1500.0f}};
  auto by_tag = [](const Scalar& a, const Scalar& b) {
    return std::tie(a.tag, a.step) < std::tie(b.tag, b.step);
  };
  std::sort(scalars.begin(), scalars.end(), by_tag);
  std::sort(expected.begin(), expected.end(), by_tag);
  EXPECT_EQ(scalars, expected);
}

TEST_F(MetricsLoggerTest, ResumeAppendsToTheSameFile) {
  {
    MetricsLogger logger(dir_.string());
    logger.log({{"split", "train"}, {"step", 1}, {"loss", 1.0}});
  }
  // A crash mid-line leaves a partial record; the resumed run starts on a new line.
  std::ofstream(dir_ / "metrics.jsonl", std::ios::app) << R"({"split": "tr)";
  {
    MetricsLogger logger(dir_.string());
    logger.log({{"split", "train"}, {"step", 2}, {"loss", 0.5}});
  }
  auto lines = lines_of(dir_ / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(json::parse(lines[0])["step"], 1);
  EXPECT_TRUE(json::parse(lines[1], nullptr, false).is_discarded());
  EXPECT_EQ(json::parse(lines[2])["step"], 2);
  EXPECT_EQ(read_scalars(dir_).size(), 2u);
}

TEST_F(MetricsLoggerTest, RejectsNonObjects) {
  MetricsLogger logger(dir_.string(), false);
  try {
    logger.log(json::array({1, 2}));
    FAIL() << "expected moxing::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics: a record must be a JSON object"),
              std::string::npos);
  }
}

namespace {

// line with each run of digits replaced by "N" (std::regex trips GCC 12 warnings under ASan).
std::string shape_of(const std::string& line) {
  std::string out;
  for (size_t i = 0; i < line.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(line[i]))) {
      if (out.empty() || out.back() != 'N') out.push_back('N');
    } else {
      out.push_back(line[i]);
    }
  }
  return out;
}

// Lines of captured progress output.
std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST(Progress, PlainModeWritesEveryNSteps) {
  std::ostringstream out;
  Progress progress(120, "epoch 3/10", 50, out, false);
  for (int64_t step = 1; step <= 120; ++step) progress.update(step, 0.41234, 1e-3, 32);
  progress.finish();
  progress.finish();
  auto lines = split_lines(out.str());
  ASSERT_EQ(lines.size(), 3u) << out.str();
  for (const auto& line : lines) {
    EXPECT_EQ(shape_of(line), "epoch N/N N/N  N items/s  ETA N:N  loss N.N  lr N.Ne-N") << line;
    EXPECT_EQ(line.rfind("epoch 3/10 ", 0), 0u) << line;
    EXPECT_NE(line.find("  loss 0.4123  lr 1.0e-03"), std::string::npos) << line;
  }
  EXPECT_NE(lines[0].find(" 50/120 "), std::string::npos);
  EXPECT_NE(lines[1].find(" 100/120 "), std::string::npos);
  EXPECT_NE(lines[2].find(" 120/120 "), std::string::npos);
  EXPECT_NE(lines[2].find("ETA 0:00"), std::string::npos);
  EXPECT_EQ(out.str().find('\r'), std::string::npos);
}

TEST(Progress, PlainModeFinishOnAMultipleAddsNoLine) {
  std::ostringstream out;
  Progress progress(100, "eval", 50, out, false);
  for (int64_t step = 1; step <= 100; ++step) progress.update(step, 1.0, 0.1, 1);
  progress.finish();
  EXPECT_EQ(split_lines(out.str()).size(), 2u);
}

TEST(Progress, TerminalModeRedrawsOneLine) {
  std::ostringstream out;
  Progress progress(10, "epoch 1/2", 50, out, true);
  for (int64_t step = 1; step <= 10; ++step) progress.update(step, 0.5, 3e-4, 64);
  progress.finish();
  std::string s = out.str();
  EXPECT_EQ(s.front(), '\r');
  EXPECT_EQ(s.back(), '\n');
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 1);
  std::string last = s.substr(s.rfind('\r') + 1);
  EXPECT_EQ(shape_of(last.substr(0, last.find_last_not_of(" \n") + 1)),
            "epoch N/N [####################] N/N  N items/s  ETA N:N  loss N.N  lr N.Ne-N")
      << last;
  EXPECT_NE(last.find("] 10/10 "), std::string::npos) << last;
  EXPECT_NE(last.find("ETA 0:00  loss 0.5000  lr 3.0e-04"), std::string::npos) << last;
}

TEST(Progress, BarFillsInProportion) {
  std::ostringstream out;
  Progress progress(40, "epoch 1/1", 50, out, true);
  progress.update(10, 2.0, 1e-2, 8);
  EXPECT_NE(progress.line(true).find("[#####...............] 10/40"), std::string::npos)
      << progress.line(true);
}

TEST(MetricsLogger, DropMetricsAfterKeepsTheStepsUpToACheckpoint) {
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("moxing_drop_metrics_" + std::to_string(::getpid())))
                        .string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir + "/metrics.jsonl");
    for (int s = 1; s <= 5; ++s) f << "{\"split\": \"train\", \"step\": " << s << "}\n";
    f << "{\"note\": \"no step\"}\n{\"split\": \"train\", \"st";  // a crash mid-line
  }
  moxing::drop_metrics_after(dir, 3);
  std::ifstream in(dir + "/metrics.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[2], "{\"split\": \"train\", \"step\": 3}");
  EXPECT_EQ(lines[3], "{\"note\": \"no step\"}");
  moxing::drop_metrics_after(dir + "/absent", 3);  // no file: nothing to do
}
