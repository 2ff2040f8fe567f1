#include "moxing/models/labels.h"

#include <fmt/format.h>

#include <charconv>

#include "moxing/core/error.h"

namespace moxing::models {

void resolve_labels(const nlohmann::json& source, int64_t& num_labels,
                    std::map<std::string, std::string>& id2label,
                    std::map<std::string, int64_t>& label2id, const char* who) {
  const bool has_num_labels = source.contains("num_labels") && !source["num_labels"].is_null();
  if (!has_num_labels && !id2label.empty()) num_labels = static_cast<int64_t>(id2label.size());
  if (static_cast<int64_t>(id2label.size()) != num_labels) {
    id2label.clear();
    label2id.clear();
    for (int64_t i = 0; i < num_labels; ++i)
      id2label[std::to_string(i)] = fmt::format("LABEL_{}", i);
  }
  if (static_cast<int64_t>(label2id.size()) != num_labels) {
    label2id.clear();
    for (const auto& [id, name] : id2label) {
      int64_t value = -1;
      auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
      MOXING_CHECK(ec == std::errc() && end == id.data() + id.size() && value >= 0,
                   "{}: id2label key \"{}\" is not a label id (0, 1, ...)", who, id);
      label2id[name] = value;
    }
  }
}

void check_labels(int64_t num_labels, const std::map<std::string, std::string>& id2label,
                  const std::optional<std::string>& problem_type, const char* who) {
  MOXING_CHECK(num_labels >= 1, "{}: num_labels must be at least 1, got {}", who, num_labels);
  if (problem_type) {
    MOXING_CHECK(*problem_type == "single_label_classification" ||
                     *problem_type == "multi_label_classification" || *problem_type == "regression",
                 "{}: problem_type \"{}\" is not one of single_label_classification, "
                 "multi_label_classification, regression",
                 who, *problem_type);
  }
  for (int64_t i = 0; i < num_labels && !id2label.empty(); ++i) {
    MOXING_CHECK(id2label.count(std::to_string(i)),
                 "{}: id2label has no name for label {} (it needs ids 0 .. {})", who, i,
                 num_labels - 1);
  }
}

std::vector<std::string> label_names(int64_t num_labels,
                                     const std::map<std::string, std::string>& id2label) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < num_labels; ++i) {
    auto it = id2label.find(std::to_string(i));
    names.push_back(it != id2label.end() ? it->second : fmt::format("LABEL_{}", i));
  }
  return names;
}

}  // namespace moxing::models
