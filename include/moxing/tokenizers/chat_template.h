// Chat templates: the Jinja subset that Hugging Face `tokenizer.chat_template` strings use
// (tokenizer_config.json, GGUF `tokenizer.chat_template`), rendered as transformers renders them:
// jinja2's ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, its raise_exception
// and tojson. Not a general Jinja: no macros, includes, inheritance, blocks or autoescape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace moxing::tokenizers {

/// A chat message: role ("system", "user", "assistant", "tool") and content.
struct ChatMessage {
  std::string role;
  std::string content;
};

namespace detail {
struct ParsedTemplate;
}  // namespace detail

/// Bounds on one render. Templates come from model files, so a hostile one (loops nested
/// without end, a string doubled in a loop) must end in moxing::Error, not in a hang or an
/// exhausted memory. A step is about one statement or expression node evaluated; a loop
/// iteration costs 10, each list or dict item built or copied 4, and each 16 bytes of string
/// built or copied 1, so that steps follow time and the budget also bounds the memory a render
/// allocates. The defaults take about a second in an optimized build and are far above what
/// real templates need (thousands of steps per message).
struct RenderLimits {
  int64_t max_steps = 20'000'000;
  /// The rendered text, and any one string value.
  size_t max_bytes = size_t{64} << 20;
};

/// A parsed chat template (the Jinja subset real templates use). Parsing errors and templates
/// outside the subset throw moxing::Error naming the construct and its line, as do blocks and
/// expressions nested deeper than 200 levels (so that no recursion runs deep). Immutable after
/// construction: render is thread-safe, and copies share the parsed tree.
///
/// Values follow Python: `{{ none }}` is "None", `{{ [1, 'a'] }}` is "[1, 'a']", integers and
/// floats keep their kinds (`7 / 2` is 3.5), strings index and slice by code point. An undefined
/// variable renders as "" and fails when used in arithmetic or accessed (`foo.bar`), as in jinja2.
/// Objects iterate in the order of the nlohmann::json given (sorted keys); dict literals in the
/// template keep their order. Unlike Python, integers are 64-bit (overflow is an error), and
/// upper, lower, capitalize and the whitespace of trim/strip/split are ASCII-only; lists and dicts
/// nest at most 200 levels deep and hold at most 2^20 items.
class ChatTemplate {
 public:
  /// Parses `source`; `where` names it in error messages ("chat_template line 3: ...").
  explicit ChatTemplate(const std::string& source, const std::string& where = "chat_template");

  /// Renders with any JSON object as context (messages, add_generation_prompt, bos_token,
  /// eos_token, tools, ...). Throws moxing::Error for a runtime error or raise_exception(msg),
  /// whose message contains msg, and when the render goes past limits.
  std::string render(const nlohmann::json& context) const;
  std::string render(const nlohmann::json& context, const RenderLimits& limits) const;

  /// render({messages, add_generation_prompt, bos_token, eos_token}).
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                    const std::string& bos_token = "", const std::string& eos_token = "") const;

  /// The template text as given.
  const std::string& source() const;

 private:
  std::shared_ptr<const detail::ParsedTemplate> parsed_;
};

/// The chat template a model comes with, and the token strings it renders as bos_token and
/// eos_token.
struct ModelChatTemplate {
  ChatTemplate chat_template;
  std::string bos_token, eos_token;
};

/// A model's chat template: a GGUF file's tokenizer.chat_template; in a folder,
/// tokenizer_config.json's "chat_template" (a string, or a list of {name, template} where
/// "default" is taken) else chat_template.jinja. nullopt when the model has none; a template
/// outside the subset is an error naming the file, the construct and its line.
std::optional<ModelChatTemplate> load_chat_template(const std::string& path);

}  // namespace moxing::tokenizers
