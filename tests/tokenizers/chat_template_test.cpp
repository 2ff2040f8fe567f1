// Chat templates against jinja2: every case of tests/fixtures/tokenizers/chat_templates.json
// (made by chat_templates.py with transformers' jinja2 settings) must render byte for byte, or
// raise with the same message; plus whitespace control, values, and the errors for templates
// outside the supported subset.
#include "moxing/tokenizers/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "expect_error.h"
#include "moxing/core/error.h"

using moxing::testing::expect_error;
using namespace moxing::tokenizers;
using nlohmann::json;

namespace {

const json& fixture() {
  static const json j = [] {
    std::ifstream f(MOXING_FIXTURE_DIR "/tokenizers/chat_templates.json");
    return json::parse(f);
  }();
  return j;
}

std::string render(const std::string& tmpl, const json& ctx = json::object()) {
  return ChatTemplate(tmpl, "t").render(ctx);
}

}  // namespace

TEST(ChatTemplate, MatchesJinja2Fixture) {
  const json& f = fixture();
  ASSERT_GE(f.at("cases").size(), 10u);
  int raising = 0;
  for (const auto& c : f.at("cases")) {
    std::string name = c.at("name");
    SCOPED_TRACE(name);
    ChatTemplate t(f.at("templates").at(c.at("template").get<std::string>()).get<std::string>(),
                   name);
    if (c.contains("error")) {
      ++raising;
      expect_error([&] { t.render(c.at("context")); }, c.at("error").get<std::string>());
    } else {
      EXPECT_EQ(t.render(c.at("context")), c.at("expected").get<std::string>());
    }
  }
  EXPECT_GE(raising, 1);
}

TEST(ChatTemplate, ApplyMatchesRender) {
  const json& f = fixture();
  ChatTemplate t(f.at("templates").at("smollm2").get<std::string>());
  for (const auto& c : f.at("cases")) {
    if (c.at("template") != "smollm2") continue;
    std::vector<ChatMessage> messages;
    for (const auto& m : c.at("context").at("messages")) {
      messages.push_back({m.at("role"), m.at("content")});
    }
    EXPECT_EQ(t.apply(messages, c.at("context").at("add_generation_prompt")),
              c.at("expected").get<std::string>())
        << c.at("name");
  }
}

TEST(ChatTemplate, SmolLM2ByHand) {
  ChatTemplate t(fixture().at("templates").at("smollm2").get<std::string>());
  EXPECT_EQ(t.apply({{"system", "S"}, {"user", "hi"}}, true),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(t.apply({}, false), "");
}

TEST(ChatTemplate, WhitespaceControl) {
  EXPECT_EQ(render("a  {{- 'b' -}}  \n c"), "abc");
  EXPECT_EQ(render("a\n  {%- if true -%}\n  b  {%- endif %}\nc"), "abc");
  // trim_blocks eats one newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(render("x\n  {% if true %}\n  y\n  {% endif %}\nz"), "x\n  y\nz");
  // but not around {{ }}, and {%+ keeps the indentation.
  EXPECT_EQ(render("  {{ 1 }}\n  {%+ if true %}2{% endif %}"), "  1\n  2");
  // a tag after text on the same line keeps the text before it.
  EXPECT_EQ(render("a {% if true %}b{% endif %}"), "a b");
  EXPECT_EQ(render("  {# note #}\nx{#- gone -#}  y"), "xy");
  // jinja2 drops one trailing newline and normalizes \r\n.
  EXPECT_EQ(render("a\r\nb\n\n"), "a\nb\n");
}

TEST(ChatTemplate, ValuesRenderAsPython) {
  EXPECT_EQ(render("{{ none }} {{ true }} {{ 1.0 }} {{ 7 / 2 }} {{ [1, 'a', none] }}"),
            "None True 1.0 3.5 [1, 'a', None]");
  EXPECT_EQ(render("{{ x }}|{{ 'yes' if x else 'no' }}|{{ x is defined }}|{{ x | length }}"),
            "|no|False|0");
  EXPECT_EQ(render("{{ m.get('a', 'd') }}{{ m.b }}{{ m['c'] is undefined }}", {{"m", {{"a", 1}}}}),
            "1True");
  EXPECT_EQ(render("{{ 'héllo'[1] }}{{ 'héllo' | length }}{{ [1, 2, 3][::-1] }}"), "é5[3, 2, 1]");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
                   {{"d", {{"a", 1}, {"b", "x"}}}}),
            "a=1;b=x;");
}

TEST(ChatTemplate, LoopScopingAndNamespace) {
  EXPECT_EQ(render("{% set c = 0 %}{% for i in range(3) %}{% set c = c + 1 %}{{ c }}{% endfor %}"
                   "{{ c }}"),
            "1110");
  EXPECT_EQ(render("{% set ns = namespace(c=0) %}{% for i in range(3) %}{% set ns.c = ns.c + i %}"
                   "{% endfor %}{{ ns.c }}"),
            "3");
  EXPECT_EQ(render("{% if true %}{% set c = 5 %}{% endif %}{{ c }}"), "5");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in [1, 2, 3] if x != 2 %}{{ loop.index }}{{ x }}{{ loop.last }}"
                   "{% endfor %}"),
            "11False23True");
}

TEST(ChatTemplate, RaiseException) {
  ChatTemplate t("line one\n{{ raise_exception('roles must alternate') }}", "tmpl");
  expect_error([&] { t.render(json::object()); }, "tmpl line 2: roles must alternate");
}

TEST(ChatTemplate, UnsupportedConstructsNameTheLine) {
  expect_error([] { ChatTemplate("a\nb\n{% macro f() %}x{% endmacro %}"); },
               "chat_template line 3: {% macro %} is outside the supported Jinja subset");
  expect_error([] { ChatTemplate("{% include 'x' %}"); }, "line 1: {% include %} is outside");
  expect_error([] { ChatTemplate("{% extends 'x' %}"); }, "{% extends %} is outside");
  expect_error([] { ChatTemplate("{% block b %}{% endblock %}"); }, "{% block %} is outside");
  expect_error([] { ChatTemplate("{% filter upper %}x{% endfilter %}"); },
               "{% filter %} is outside");
  expect_error([] { ChatTemplate("\n\n{{ x | wordwrap }}"); }, "line 3: unknown filter 'wordwrap'");
  expect_error([] { ChatTemplate("{% if x is divisible %}{% endif %}"); },
               "line 1: unknown test 'divisible'");
  expect_error([] { ChatTemplate("x\n{% if a %}\n{% for m in b %}{% endfor %}"); },
               "line 2: unclosed {% if %}");
  expect_error([] { ChatTemplate("{% for m in b %}"); }, "line 1: unclosed {% for %}");
  expect_error([] { ChatTemplate("one\n{{ 'abc }}"); }, "line 2: unterminated string");
  expect_error([] { ChatTemplate("{% endif %}"); }, "line 1: unexpected {% endif %}");
  expect_error([] { ChatTemplate("{% set x %}a{% endset %}"); }, "block {% set %} is outside");
  expect_error([] { ChatTemplate("\n{{ 1 + }}"); },
               "line 2: expected an expression, got the end of the tag");
  expect_error([] { ChatTemplate("{{ x "); }, "line 1: unclosed {{");
  expect_error([] { ChatTemplate("{# x "); }, "line 1: unclosed comment");
  expect_error([] { ChatTemplate("{{ a ? b }}"); }, "unexpected character '?'");
}

TEST(ChatTemplate, RuntimeErrorsNameTheLine) {
  expect_error([] { render("\n{{ foo.bar }}"); }, "t line 2: 'foo' is undefined");
  expect_error([] { render("{{ 1 // 0 }}"); }, "t line 1: integer division or modulo by zero");
  expect_error([] { render("{% for x in 5 %}{% endfor %}"); }, "'int' object is not iterable");
  expect_error([] { render("{{ 'a' < 1 }}"); },
               "'<' not supported between instances of 'str' and 'int'");
  expect_error([] { render("{{ x | tojson }}"); }, "Undefined is not JSON serializable");
  expect_error([] { render("{{ 'a'.zfill(3) }}"); }, "'str' object has no method 'zfill'");
  expect_error([] { render("{{ cycler() }}"); }, "'cycler' is not a function");
  expect_error([] { render("{% set x = 1 %}{% set x.y = 2 %}"); }, "'x' is not a namespace");
  expect_error([] { ChatTemplate("x").render(json::array()); }, "must be a JSON object");
  // Python ints are unbounded; here they are 64-bit and overflow is an error, not a wrap.
  EXPECT_EQ(render("{{ 2 ** 62 }}"), "4611686018427387904");
  expect_error([] { render("{{ 2 ** 63 }}"); }, "integer overflow");
  expect_error([] { render("{{ range(200000) | length }}"); }, "range too big");
}

TEST(ChatTemplate, CopiesShareAndRenderConcurrently) {
  ChatTemplate t(fixture().at("templates").at("zephyr").get<std::string>());
  ChatTemplate copy = t;
  EXPECT_EQ(&copy.source(), &t.source());
  std::vector<ChatMessage> msgs = {{"user", "hi"}, {"assistant", "yo"}};
  std::string want = t.apply(msgs, true, "<s>", "</s>");
  std::vector<std::thread> threads;
  std::vector<std::string> got(4);
  for (size_t k = 0; k < got.size(); ++k) {
    threads.emplace_back([&, k] { got[k] = copy.apply(msgs, true, "<s>", "</s>"); });
  }
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, want);
}
