// The registry of GGUF layouts and the metadata helpers the layouts share.
#include "moxing/models/gguf_layout.h"

#include <fmt/format.h>

#include "moxing/core/error.h"

namespace moxing::models {

namespace {

std::vector<GgufLayout>& layouts() {
  static std::vector<GgufLayout> all;
  return all;
}

}  // namespace

void register_gguf_layout(GgufLayout layout) { layouts().push_back(std::move(layout)); }

const GgufLayout& find_gguf_layout(const std::string& architecture, const std::string& where) {
  std::vector<std::string> known;
  for (const GgufLayout& l : layouts()) {
    if (l.architecture == architecture) return l;
    known.push_back(l.architecture);
  }
  fail("{}: general.architecture \"{}\" is not one moxing reads from GGUF (it reads: {})", where,
       architecture, fmt::join(known, ", "));
}

int64_t gguf_int(const GgufFile& file, const std::string& key, std::optional<int64_t> fallback) {
  const GgufValue* v = file.find(key);
  if (v == nullptr) {
    if (fallback) return *fallback;
    fail("{}: metadata '{}' is missing", file.path, key);
  }
  return v->as_int(key);
}

double gguf_number(const GgufFile& file, const std::string& key, std::optional<double> fallback) {
  const GgufValue* v = file.find(key);
  if (v == nullptr) {
    if (fallback) return *fallback;
    fail("{}: metadata '{}' is missing", file.path, key);
  }
  return v->as_number(key);
}

}  // namespace moxing::models
