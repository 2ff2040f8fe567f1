// TensorBoard event files, scalars and images: `events.out.tfevents.<unix time>.<hostname>` in a
// log folder, a TFRecord stream of protobuf Event messages written by hand (no protobuf library).
// Not a general TensorBoard writer: no histograms, audio, graphs or hparams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace moxing {

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord framing uses it.
uint32_t crc32c(const void* data, size_t n);

/// The masked CRC TFRecord stores: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t n);

/// One TFRecord: u64 little-endian length, masked CRC of the length bytes, the data, masked
/// CRC of the data.
std::string tfrecord_frame(std::string_view data);

/// The protobuf bytes of an Event{wall_time, file_version} (the first record of a file).
std::string tf_event_file_version(double wall_time);

/// The protobuf bytes of an Event{wall_time, step, Summary{value{tag, simple_value}}}.
std::string tf_event_scalar(double wall_time, int64_t step, const std::string& tag, float value);

/// The protobuf bytes of an Event{wall_time, step, Summary{value{tag, image{height, width,
/// colorspace, encoded_image_string}}}}: png holds the encoded image, colorspace is its
/// channels (1 gray, 3 RGB, 4 RGBA), as TensorBoard's image dashboard reads it.
std::string tf_event_image(double wall_time, int64_t step, const std::string& tag, int height,
                           int width, int colorspace, std::string_view png);

/// Writes scalar and image summaries to a new event file in logdir (created when missing). Records
/// are buffered and written out at most flush_every_s seconds apart, on flush(), and on
/// destruction, so a crash loses at most that window.
class TfEventsWriter {
 public:
  explicit TfEventsWriter(const std::string& logdir, double flush_every_s = 2.0);
  TfEventsWriter(const TfEventsWriter&) = delete;
  TfEventsWriter& operator=(const TfEventsWriter&) = delete;
  ~TfEventsWriter();

  /// Appends a scalar event; TensorBoard stores simple_value as a float.
  void add_scalar(const std::string& tag, double value, int64_t step);
  /// Appends an image event (png: the encoded image of height x width x channels).
  void add_image(const std::string& tag, std::string_view png, int height, int width, int channels,
                 int64_t step);
  /// Writes buffered records to the file and flushes it to the operating system.
  void flush();
  /// The event file's path.
  const std::string& path() const { return path_; }

 private:
  void write_record(std::string_view data);

  std::string path_;
  std::FILE* file_ = nullptr;
  double flush_every_s_;
  double last_flush_ = 0;
};

}  // namespace moxing
