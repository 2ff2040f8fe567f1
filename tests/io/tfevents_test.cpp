// TensorBoard event files: CRC-32C against published check values, then our own files read
// back record by record (framing, both CRCs, the decoded protobuf Events).
#include "moxing/io/tfevents.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "moxing/core/error.h"

using namespace moxing;
namespace fs = std::filesystem;

namespace {

// The fields of an Event this test understands.
struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::string tag;
  std::optional<float> simple_value;
};

class ProtoReader {
 public:
  explicit ProtoReader(std::string_view bytes) : bytes_(bytes) {}
  bool done() const { return pos_ == bytes_.size(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= bytes_.size()) throw std::runtime_error("truncated varint");
      auto b = static_cast<uint8_t>(bytes_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    throw std::runtime_error("varint too long");
  }
  template <class T>
  T fixed() {
    if (pos_ + sizeof(T) > bytes_.size()) throw std::runtime_error("truncated fixed field");
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view bytes() {
    uint64_t n = varint();
    if (pos_ + n > bytes_.size()) throw std::runtime_error("truncated bytes field");
    std::string_view v = bytes_.substr(pos_, n);
    pos_ += n;
    return v;
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

DecodedEvent decode_event(std::string_view data) {
  DecodedEvent event;
  ProtoReader r(data);
  while (!r.done()) {
    uint64_t key = r.varint();
    if (key == ((1 << 3) | 1)) {
      event.wall_time = r.fixed<double>();
    } else if (key == ((2 << 3) | 0)) {
      event.step = static_cast<int64_t>(r.varint());
    } else if (key == ((3 << 3) | 2)) {
      event.file_version = r.bytes();
    } else if (key == ((5 << 3) | 2)) {
      ProtoReader summary(r.bytes());
      while (!summary.done()) {
        if (summary.varint() != ((1 << 3) | 2)) throw std::runtime_error("Summary: bad field");
        ProtoReader value(summary.bytes());
        while (!value.done()) {
          uint64_t k = value.varint();
          if (k == ((1 << 3) | 2)) {
            event.tag = value.bytes();
          } else if (k == ((2 << 3) | 5)) {
            event.simple_value = value.fixed<float>();
          } else {
            throw std::runtime_error("Summary.Value: unexpected field");
          }
        }
      }
    } else {
      throw std::runtime_error("Event: unexpected field " + std::to_string(key));
    }
  }
  return event;
}

// Reads every TFRecord of a file, checking the length and data CRCs.
std::vector<DecodedEvent> read_events(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<DecodedEvent> events;
  size_t pos = 0;
  while (pos < bytes.size()) {
    EXPECT_LE(pos + 12, bytes.size()) << "truncated record header";
    uint64_t n;
    uint32_t len_crc, data_crc;
    std::memcpy(&n, bytes.data() + pos, 8);
    std::memcpy(&len_crc, bytes.data() + pos + 8, 4);
    EXPECT_EQ(len_crc, masked_crc32c(bytes.data() + pos, 8)) << "length CRC at " << pos;
    EXPECT_LE(pos + 12 + n + 4, bytes.size()) << "truncated record";
    std::string_view data(bytes.data() + pos + 12, n);
    std::memcpy(&data_crc, bytes.data() + pos + 12 + n, 4);
    EXPECT_EQ(data_crc, masked_crc32c(data.data(), data.size())) << "data CRC at " << pos;
    events.push_back(decode_event(data));
    pos += 12 + n + 4;
  }
  return events;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

class TfEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("moxing_tfevents_test_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

TEST(Crc32c, KnownVectors) {
  // Check values from RFC 3720 (iSCSI) appendix B.4 and the CRC catalogue.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0x00000000u);
  std::string zeros(32, '\0'), ones(32, '\xFF'), up(32, '\0'), down(32, '\0');
  for (int i = 0; i < 32; ++i) up[i] = static_cast<char>(i), down[i] = static_cast<char>(31 - i);
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(up.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c(down.data(), 32), 0x113FDB5Cu);
}

TEST(Crc32c, MaskedMatchesTfRecordRule) {
  uint32_t crc = crc32c("123456789", 9);
  EXPECT_EQ(masked_crc32c("123456789", 9), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST(TfEvents, EventBytesMatchProtobufEncoding) {
  // Hand-checked against protobuf's wire format: key 0x09 fixed64 wall_time, 0x10 varint step,
  // 0x2A Summary{0x0A Value{0x0A tag, 0x15 fixed32 simple_value}}.
  std::string e = tf_event_scalar(1.0, 300, "a", 0.5f);
  std::string expected = std::string("\x09\x00\x00\x00\x00\x00\x00\xf0\x3f", 9) +
                         std::string("\x10\xac\x02", 3) + std::string("\x2a\x0a\x0a\x08", 4) +
                         std::string(
                             "\x0a\x01"
                             "a",
                             3) +
                         std::string("\x15\x00\x00\x00\x3f", 5);
  EXPECT_EQ(e, expected);
  std::string v = tf_event_file_version(1.0);
  EXPECT_EQ(v, std::string("\x09\x00\x00\x00\x00\x00\x00\xf0\x3f\x1a\x0d", 11) + "brain.Event:2");
}

TEST_F(TfEventsTest, FileReadsBack) {
  std::string path;
  {
    TfEventsWriter writer(dir_.string());
    path = writer.path();
    writer.add_scalar("train/loss", 2.5, 1);
    writer.add_scalar("train/loss", 1.25, 2);
    writer.add_scalar("val/accuracy", 0.875, 1000000000000);
    writer.add_scalar("negative/step", -3.0, -1);
  }
  std::string name = fs::path(path).filename().string();
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  EXPECT_NE(name.find(std::string(".") + host), std::string::npos) << name;

  auto events = read_events(path);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  double now = static_cast<double>(time(nullptr));
  EXPECT_NEAR(events[0].wall_time, now, 60);
  EXPECT_EQ(events[1].tag, "train/loss");
  EXPECT_EQ(events[1].step, 1);
  EXPECT_EQ(events[1].simple_value, 2.5f);
  EXPECT_EQ(events[2].simple_value, 1.25f);
  EXPECT_EQ(events[3].tag, "val/accuracy");
  EXPECT_EQ(events[3].step, 1000000000000);
  EXPECT_EQ(events[3].simple_value, 0.875f);
  EXPECT_EQ(events[4].step, -1);
  EXPECT_EQ(events[4].simple_value, -3.0f);
  for (size_t i = 1; i < events.size(); ++i) EXPECT_GE(events[i].wall_time, events[0].wall_time);
}

TEST_F(TfEventsTest, FlushMakesRecordsVisibleBeforeClose) {
  TfEventsWriter writer(dir_.string(), 3600.0);
  writer.add_scalar("x", 1.0, 7);
  writer.flush();
  auto events = read_events(writer.path());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].step, 7);
}

TEST_F(TfEventsTest, TwoWritersGetTwoFiles) {
  TfEventsWriter a(dir_.string()), b(dir_.string());
  EXPECT_NE(a.path(), b.path());
  EXPECT_EQ(event_files(dir_).size(), 2u);
}

TEST_F(TfEventsTest, UnwritableFolderThrows) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "file") << "x";
  try {
    TfEventsWriter writer((dir_ / "file" / "sub").string());
    FAIL() << "expected moxing::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tfevents: cannot create folder"), std::string::npos)
        << e.what();
  }
}
