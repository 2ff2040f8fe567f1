// TensorBoard event files. Field numbers from tensorflow/core/util/event.proto
// (Event: wall_time=1 double, step=2 int64, file_version=3 string, summary=5 Summary) and
// tensorflow/core/framework/summary.proto (Summary: value=1; Value: tag=1, simple_value=2
// float, image=4 Image; Image: height=1, width=2, colorspace=3 int32, encoded_image_string=4). The
// protobuf encoding is written here by hand: varints, fixed64, fixed32 and length-delimited fields
// are all an Event needs.
#include "moxing/io/tfevents.h"

#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "io/file_util.h"
#include "moxing/core/error.h"

namespace moxing {

static_assert(std::endian::native == std::endian::little,
              "TFRecord and protobuf fixed-width fields are little-endian");

namespace {

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? 0x82F63B78u : 0u);
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// Protobuf wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_key(std::string& out, uint32_t field, uint32_t wire_type) {
  put_varint(out, (field << 3) | wire_type);
}

template <class T>
void put_raw(std::string& out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));
  out.append(bytes, sizeof(T));
}

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// Event{wall_time, step, summary} around one serialized Summary.Value.
std::string summary_event(double wall_time, int64_t step, const std::string& summary_value) {
  std::string summary;
  put_bytes(summary, 1, summary_value);
  std::string event;
  put_key(event, 1, kFixed64);
  put_raw<double>(event, wall_time);
  put_key(event, 2, kVarint);
  put_varint(event, static_cast<uint64_t>(step));  // negative steps take ten bytes, as in protobuf
  put_bytes(event, 5, summary);
  return event;
}

double unix_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

double monotonic_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) crc = kCrc32cTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord_frame(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_raw<uint64_t>(out, data.size());
  put_raw<uint32_t>(out, masked_crc32c(out.data(), 8));
  out.append(data);
  put_raw<uint32_t>(out, masked_crc32c(data.data(), data.size()));
  return out;
}

std::string tf_event_file_version(double wall_time) {
  std::string event;
  put_key(event, 1, kFixed64);
  put_raw<double>(event, wall_time);
  put_bytes(event, 3, "brain.Event:2");
  return event;
}

std::string tf_event_scalar(double wall_time, int64_t step, const std::string& tag, float value) {
  std::string summary_value;
  put_bytes(summary_value, 1, tag);
  put_key(summary_value, 2, kFixed32);
  put_raw<float>(summary_value, value);
  return summary_event(wall_time, step, summary_value);
}

std::string tf_event_image(double wall_time, int64_t step, const std::string& tag, int height,
                           int width, int colorspace, std::string_view png) {
  MOXING_CHECK(height > 0 && width > 0 && colorspace >= 1 && colorspace <= 4,
               "tfevents: an image needs a positive size and 1 to 4 channels, got {}x{}x{}", height,
               width, colorspace);
  std::string image;
  put_key(image, 1, kVarint);
  put_varint(image, static_cast<uint64_t>(height));
  put_key(image, 2, kVarint);
  put_varint(image, static_cast<uint64_t>(width));
  put_key(image, 3, kVarint);
  put_varint(image, static_cast<uint64_t>(colorspace));
  put_bytes(image, 4, png);
  std::string value;
  put_bytes(value, 1, tag);
  put_bytes(value, 4, image);
  return summary_event(wall_time, step, value);
}

TfEventsWriter::TfEventsWriter(const std::string& logdir, double flush_every_s)
    : flush_every_s_(flush_every_s) {
  std::error_code ec;
  std::filesystem::create_directories(logdir, ec);
  if (ec) fail("tfevents: cannot create folder {}: {}", logdir, ec.message());
  double now = unix_seconds();
  std::string base =
      fmt::format("{}/events.out.tfevents.{}.{}", logdir, static_cast<int64_t>(now), host_name());
  // Two writers started in the same second get distinct files; "x" never opens an existing one.
  path_ = base;
  for (int n = 1; !(file_ = std::fopen(path_.c_str(), "wbx")); ++n) {
    if (errno != EEXIST || n > 1000) {
      fail("tfevents: cannot create {}: {}", path_, detail::errno_text(errno));
    }
    path_ = fmt::format("{}.{}", base, n);
  }
  write_record(tf_event_file_version(now));
  flush();
}

TfEventsWriter::~TfEventsWriter() {
  if (file_) std::fclose(file_);
}

void TfEventsWriter::write_record(std::string_view data) {
  std::string record = tfrecord_frame(data);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size()) {
    fail("tfevents: cannot write {}: {}", path_, detail::errno_text(errno));
  }
}

void TfEventsWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  write_record(tf_event_scalar(unix_seconds(), step, tag, static_cast<float>(value)));
  if (monotonic_seconds() - last_flush_ >= flush_every_s_) flush();
}

void TfEventsWriter::add_image(const std::string& tag, std::string_view png, int height, int width,
                               int channels, int64_t step) {
  write_record(tf_event_image(unix_seconds(), step, tag, height, width, channels, png));
  flush();
}

void TfEventsWriter::flush() {
  if (std::fflush(file_) != 0) {
    fail("tfevents: cannot write {}: {}", path_, detail::errno_text(errno));
  }
  last_flush_ = monotonic_seconds();
}

}  // namespace moxing
