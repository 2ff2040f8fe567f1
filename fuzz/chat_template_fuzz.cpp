// libFuzzer target for chat templates (built and run by scripts/fuzz). The input is a template:
// it must either be rejected with moxing::Error or parse, and then render a fixed conversation
// or fail with moxing::Error; any other exception, a crash, a hang or a runaway allocation is a
// failure (chat templates come from untrusted model files).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "moxing/core/error.h"
#include "moxing/tokenizers/chat_template.h"

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "chat_template_fuzz: %s\n", what);
  std::abort();
}

const nlohmann::json& context() {
  static const nlohmann::json ctx = {
      {"messages",
       {{{"role", "system"}, {"content", "You are terse."}},
        {{"role", "user"}, {"content", "Hi! \xe6\x98\xa5 'quoted' \"too\"\n"}},
        {{"role", "assistant"}, {"content", "Hello."}},
        {{"role", "user"}, {"content", "2 + 2?"}}}},
      {"add_generation_prompt", true},
      {"bos_token", "<s>"},
      {"eos_token", "</s>"}};
  return ctx;
}

// The default limits take about a second in an optimized build, ten under the sanitizers; these
// tighter ones exercise the same checks with every input done in well under a second (a real
// template renders the context above in a few hundred steps).
const moxing::tokenizers::RenderLimits kLimits{500'000, size_t{1} << 20};

// SmolLM2's ChatML template (tests/fixtures/tokenizers/chat_templates.json).
const char* kChatML =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}";

}  // namespace

// A valid template must parse and render before fuzzing starts: scripts/fuzz links only the
// library folders the engine reaches, and a part it needs but left out would otherwise turn
// every input into a quiet rejection.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  try {
    std::string out = moxing::tokenizers::ChatTemplate(kChatML, "fuzz").render(context(), kLimits);
    if (out.find("<|im_start|>assistant\nHello.<|im_end|>\n") == std::string::npos ||
        !out.ends_with("<|im_start|>assistant\n")) {
      broken("a valid chat template rendered wrongly");
    }
  } catch (const moxing::Error& e) {
    std::fprintf(stderr, "chat_template_fuzz: a valid chat template was rejected: %s\n", e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string source(reinterpret_cast<const char*>(data), size);
  try {
    moxing::tokenizers::ChatTemplate tmpl(source, "fuzz");
    (void)tmpl.render(context(), kLimits);
  } catch (const moxing::Error&) {
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chat_template_fuzz: exception other than moxing::Error: %s\n", e.what());
    std::abort();
  }
  return 0;
}
