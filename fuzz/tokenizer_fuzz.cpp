// libFuzzer target for tokenizer.json (built and run by scripts/fuzz). Any input must either be
// rejected with moxing::Error or give a tokenizer whose ids for a mixed text (when it accepts
// the text) lie inside its vocabulary and decode without error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "moxing/core/error.h"
#include "moxing/tokenizers/tokenizer.h"

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "tokenizer_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

// A valid tokenizer.json (a test fixture; scripts/fuzz runs from the repository root) must load
// and encode before fuzzing starts: scripts/fuzz links only the library folders the loader
// reaches, and a part it needs but left out would otherwise turn every input into a quiet
// rejection.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* path = "tests/fixtures/tokenizers/char/tokenizer.json";
  if (!std::filesystem::exists(path)) return 0;
  try {
    std::unique_ptr<moxing::tokenizers::Tokenizer> tok = moxing::tokenizers::load_tokenizer(path);
    if (tok->encode("hello").empty()) broken("a valid tokenizer encoded a word to nothing");
  } catch (const moxing::Error& e) {
    std::fprintf(stderr, "tokenizer_fuzz: a valid tokenizer.json was rejected: %s\n", e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<moxing::tokenizers::Tokenizer> tok;
  try {
    tok = moxing::tokenizers::tokenizer_from_json(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const moxing::Error&) {
    return 0;
  }
  const std::string text = "Hello, world! don't 12 345 \xe6\x98\xa5\xe9\xa3\x8e  \n\t x";
  std::vector<int32_t> ids;
  try {
    ids = tok->encode(text);
  } catch (const moxing::Error&) {
    return 0;  // a vocabulary without some byte or character may refuse the text
  }
  for (int32_t id : ids) {
    if (id < 0 || id >= tok->vocab_size()) broken("encode gave an id outside the vocabulary");
  }
  (void)tok->decode(ids);
  return 0;
}
