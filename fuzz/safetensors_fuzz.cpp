// libFuzzer target for the safetensors parser (built and run by scripts/fuzz). Any input must
// either be rejected with moxing::Error or load into tensors whose every byte can be read and
// that write back to a file which loads to the same tensors and metadata.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "moxing/io/safetensors.h"

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "safetensors_fuzz: %s\n", what);
  std::abort();
}

std::string bytes_of(const moxing::Tensor& t) {
  size_t n = static_cast<size_t>(t.numel()) * moxing::dtype_size(t.dtype());
  return std::string(static_cast<const char*>(t.raw_data()), n);
}

}  // namespace

// A valid file must load and round-trip before fuzzing starts: scripts/fuzz links only the
// library folders the parser reaches, and an op it needs but left out would otherwise turn every
// input into a quiet rejection.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  moxing::NamedTensors tensors = {
      {"w", moxing::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3})},
      {"ids", moxing::from_vector(std::vector<int64_t>{7, 8}, {2})}};
  std::string bytes = moxing::serialize_safetensors(tensors, {{"format", "pt"}});
  try {
    moxing::SafetensorsFile f = moxing::parse_safetensors(
        reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "valid");
    if (f.tensors.size() != 2) broken("a valid two-tensor file loaded with another count");
  } catch (const moxing::Error& e) {
    std::fprintf(stderr, "safetensors_fuzz: a valid file was rejected: %s\n", e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moxing::SafetensorsFile f;
  try {
    f = moxing::parse_safetensors(data, size, "fuzz");
  } catch (const moxing::Error&) {
    return 0;
  }
  std::map<std::string, std::string> first;
  for (const auto& [name, t] : f.tensors) {
    if (!t.is_contiguous()) broken("a loaded tensor is not contiguous");
    first[name] = std::string(moxing::safetensors_dtype_name(t.dtype())) +
                  moxing::shape_str(t.shape()) + bytes_of(t);
  }
  if (first.size() != f.tensors.size()) broken("two loaded tensors share a name");

  std::string again = moxing::serialize_safetensors(f.tensors, f.metadata);
  moxing::SafetensorsFile g = moxing::parse_safetensors(
      reinterpret_cast<const uint8_t*>(again.data()), again.size(), "fuzz-again");
  std::map<std::string, std::string> second;
  for (const auto& [name, t] : g.tensors) {
    second[name] = std::string(moxing::safetensors_dtype_name(t.dtype())) +
                   moxing::shape_str(t.shape()) + bytes_of(t);
  }
  if (first != second) broken("tensors changed in a write and read round trip");
  if (f.metadata != g.metadata) broken("metadata changed in a write and read round trip");
  return 0;
}
