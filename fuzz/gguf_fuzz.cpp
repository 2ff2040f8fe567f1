// libFuzzer target for the GGUF parser (built and run by scripts/fuzz). Any input must either be
// rejected with moxing::Error or load into metadata and tensors whose every byte can be read,
// that dequantize where moxing reads the type, and that write back to a file which loads to the
// same metadata and tensors.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "moxing/io/gguf.h"

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "gguf_fuzz: %s\n", what);
  std::abort();
}

struct Seen {
  std::string name;
  std::vector<int64_t> dims;
  moxing::GgmlType type;
  std::string bytes;
  bool operator==(const Seen&) const = default;
};

std::vector<Seen> seen(const moxing::GgufFile& f) {
  std::vector<Seen> out;
  for (const moxing::GgufTensor& t : f.tensors) {
    out.push_back(
        {t.name, t.dims, t.type, std::string(reinterpret_cast<const char*>(t.data), t.nbytes)});
  }
  return out;
}

}  // namespace

// A valid file must load and round-trip before fuzzing starts (a library part left out of the
// link would otherwise turn every input into a quiet rejection).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  moxing::GgufMetadata meta = {{"general.architecture", moxing::GgufValue::of_string("llama")},
                               {"tokens", moxing::GgufValue::of_strings({"a", "b"})}};
  std::vector<moxing::GgufTensorData> tensors = {
      {"w", {32, 2}, moxing::GgmlType::Q8_0, std::string(68, '\0')}};
  std::string bytes = moxing::serialize_gguf(meta, tensors);
  try {
    moxing::GgufFile f =
        moxing::parse_gguf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "valid");
    if (f.tensors.size() != 1 || f.metadata.size() != 2) broken("a valid file loaded wrong");
    if (f.to_tensor("w").numel() != 64) broken("a valid Q8_0 tensor dequantized wrong");
  } catch (const moxing::Error& e) {
    std::fprintf(stderr, "gguf_fuzz: a valid file was rejected: %s\n", e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moxing::GgufFile f;
  try {
    f = moxing::parse_gguf(data, size, "fuzz");
  } catch (const moxing::Error&) {
    return 0;
  }
  for (const moxing::GgufTensor& t : f.tensors) {
    if (t.numel() > (1 << 20)) continue;
    try {
      moxing::Tensor x = f.to_tensor(t.name);
      if (x.numel() != t.numel()) broken("a tensor read with another element count");
    } catch (const moxing::Error&) {
      if (moxing::ggml_type_dequantizes(t.type)) broken("a readable tensor type was refused");
    }
  }
  std::vector<moxing::GgufTensorData> tensors;
  for (const Seen& s : seen(f)) tensors.push_back({s.name, s.dims, s.type, s.bytes});
  std::string again = moxing::serialize_gguf(f.metadata, tensors);
  moxing::GgufFile g = moxing::parse_gguf(reinterpret_cast<const uint8_t*>(again.data()),
                                          again.size(), "fuzz-again");
  if (!(g.metadata == f.metadata)) broken("metadata changed in a write and read round trip");
  if (seen(g) != seen(f)) broken("tensors changed in a write and read round trip");
  return 0;
}
