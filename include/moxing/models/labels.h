// The label fields every classifier config carries as transformers' PretrainedConfig does
// (num_labels, id2label, label2id, problem_type), read, checked and named the same way for
// every family.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace moxing::models {

/// As transformers: num_labels follows id2label when source leaves it out; a num_labels that
/// id2label does not match gives LABEL_0 .. LABEL_{n-1}; label2id follows id2label. who names
/// the config in errors ("BertConfig").
void resolve_labels(const nlohmann::json& source, int64_t& num_labels,
                    std::map<std::string, std::string>& id2label,
                    std::map<std::string, int64_t>& label2id, const char* who);

/// num_labels >= 1, every id below it named, problem_type null or one of transformers' three.
void check_labels(int64_t num_labels, const std::map<std::string, std::string>& id2label,
                  const std::optional<std::string>& problem_type, const char* who);

/// The label names in id order (LABEL_i where id2label has none).
std::vector<std::string> label_names(int64_t num_labels,
                                     const std::map<std::string, std::string>& id2label);

}  // namespace moxing::models
