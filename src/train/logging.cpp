// metrics.jsonl and its TensorBoard mirror. Each record is written and flushed as one line,
// so a crash leaves at most a final partial line, which readers skip.
#include "moxing/train/logging.h"

#include <cerrno>
#include <filesystem>
#include <sstream>

#include "io/file_util.h"
#include "moxing/core/error.h"
#include "moxing/io/checkpoint.h"

namespace moxing {

MetricsLogger::MetricsLogger(const std::string& run_dir, bool tensorboard)
    : path_(run_dir + "/metrics.jsonl") {
  std::error_code ec;
  std::filesystem::create_directories(run_dir, ec);
  if (ec) fail("metrics: cannot create folder {}: {}", run_dir, ec.message());
  // The event file first: a constructor that throws after fopen would leak the FILE.
  if (tensorboard) tensorboard_ = std::make_unique<TfEventsWriter>(run_dir);
  bool ends_mid_line = false;
  if (std::FILE* old = std::fopen(path_.c_str(), "rb")) {
    ends_mid_line = std::fseek(old, -1, SEEK_END) == 0 && std::fgetc(old) != '\n';
    std::fclose(old);
  }
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) fail("metrics: cannot open {}: {}", path_, detail::errno_text(errno));
  // An interrupted earlier run can leave a final line without its newline; end it so the next
  // record is not glued to it.
  if (ends_mid_line) std::fputc('\n', file_);
}

MetricsLogger::~MetricsLogger() {
  if (file_) std::fclose(file_);
}

void MetricsLogger::log(const nlohmann::json& record) {
  // Invalid UTF-8 in a string becomes U+FFFD rather than an exception mid-run.
  std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  MOXING_CHECK(record.is_object(), "metrics: a record must be a JSON object, got {}", line);
  line.push_back('\n');
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    fail("metrics: cannot write {}: {}", path_, detail::errno_text(errno));
  }
  if (!tensorboard_) return;
  auto step = record.find("step");
  if (step != record.end() && step->is_number()) last_step_ = step->get<int64_t>();
  auto split = record.find("split");
  std::string prefix =
      split != record.end() && split->is_string() ? split->get<std::string>() + "/" : std::string();
  mirror(prefix, record, last_step_, true);
  tensorboard_->flush();
}

void MetricsLogger::add_image(const std::string& tag, std::string_view png, int height, int width,
                              int channels, int64_t step) {
  if (tensorboard_) tensorboard_->add_image(tag, png, height, width, channels, step);
}

void MetricsLogger::mirror(const std::string& prefix, const nlohmann::json& object, int64_t step,
                           bool top_level) {
  for (const auto& [key, value] : object.items()) {
    if (top_level && (key == "step" || key == "epoch")) continue;
    if (value.is_number()) {
      tensorboard_->add_scalar(prefix + key, value.get<double>(), step);
    } else if (value.is_object()) {
      mirror(prefix + key + "/", value, step, false);
    }
  }
}

void drop_metrics_after(const std::string& run_dir, int64_t step) {
  const std::string path = run_dir + "/metrics.jsonl";
  if (!std::filesystem::exists(path)) return;
  std::istringstream in(read_text_file(path));
  std::string line, kept;
  while (std::getline(in, line)) {
    nlohmann::json r = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!r.is_object()) continue;
    auto s = r.find("step");
    if (s != r.end() && s->is_number() && s->get<double>() > static_cast<double>(step)) continue;
    kept += line + "\n";
  }
  write_text_file_atomic(path, kept);
}

}  // namespace moxing
