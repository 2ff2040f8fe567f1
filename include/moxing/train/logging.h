// Training-run logs: `metrics.jsonl` (one JSON object per line, the file programs read) with
// every numeric field mirrored to TensorBoard event files in the same run folder. Not a
// logging framework: no levels, no text log.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "moxing/io/tfevents.h"

namespace moxing {

/// Appends records to <run_dir>/metrics.jsonl and mirrors them to TensorBoard.
class MetricsLogger {
 public:
  /// Opens (creating run_dir when missing) <run_dir>/metrics.jsonl for appending, so a resumed
  /// run continues the same file. With tensorboard, a new event file is started in run_dir.
  explicit MetricsLogger(const std::string& run_dir, bool tensorboard = true);
  MetricsLogger(const MetricsLogger&) = delete;
  MetricsLogger& operator=(const MetricsLogger&) = delete;
  ~MetricsLogger();

  /// Writes record as one line and flushes it. Each numeric field other than "step" and
  /// "epoch" goes to TensorBoard as "<split>/<key>" ("train/loss", "val/accuracy"), or "<key>"
  /// when the record has no "split", at step record["step"] (the last step seen when absent);
  /// nested objects give "<split>/<key>/<inner key>". A record must be a JSON object.
  void log(const nlohmann::json& record);

  /// Adds an image (png: the encoded image of height x width x channels) to TensorBoard as
  /// `tag` at step; nothing when mirroring is off. metrics.jsonl holds no images.
  void add_image(const std::string& tag, std::string_view png, int height, int width, int channels,
                 int64_t step);

  /// <run_dir>/metrics.jsonl.
  const std::string& path() const { return path_; }
  /// The TensorBoard writer, or nullptr when mirroring is off.
  TfEventsWriter* tensorboard() { return tensorboard_.get(); }

 private:
  void mirror(const std::string& prefix, const nlohmann::json& object, int64_t step,
              bool top_level);

  std::string path_;
  std::FILE* file_ = nullptr;
  std::unique_ptr<TfEventsWriter> tensorboard_;
  int64_t last_step_ = 0;
};

/// Before a resumed run appends to <run_dir>/metrics.jsonl: keeps the records of steps up to
/// `step` (the checkpoint's) and drops the later ones, which the resumed run logs again, and
/// any line that is not a complete JSON record. The file is replaced atomically.
void drop_metrics_after(const std::string& run_dir, int64_t step);

}  // namespace moxing
