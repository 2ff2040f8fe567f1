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

// --- Hostile templates. Chat templates come from model files, so any template must end in
// moxing::Error: never a crash (deep recursion), a hang, or exhausted memory. Each case here
// would crash or run for minutes without its limit, and ends in milliseconds with it.

namespace {

std::string times(const std::string& s, int n) {
  std::string out;
  for (int k = 0; k < n; ++k) out += s;
  return out;
}

std::string render_limited(const std::string& tmpl, int64_t max_steps, size_t max_bytes,
                           const json& ctx = json::object()) {
  return ChatTemplate(tmpl, "t").render(ctx, RenderLimits{max_steps, max_bytes});
}

}  // namespace

TEST(ChatTemplateLimits, DeepNestingIsAParseError) {
  const int deep = 10000;  // past the stack without the limit, under AddressSanitizer at least
  const std::string too_deep = "nesting deeper than 200 levels";
  expect_error([&] { ChatTemplate("\n{{ " + times("(", deep) + "1" + times(")", deep) + " }}"); },
               "chat_template line 2: " + too_deep);
  expect_error([&] { ChatTemplate("{{ " + times("[", deep) + times("]", deep) + " }}"); },
               too_deep);
  expect_error(
      [&] { ChatTemplate("{{ " + times("{'a': ", deep) + "1" + times("}", deep) + " }}"); },
      too_deep);
  expect_error([&] { ChatTemplate("{{ " + times("not ", deep) + "x }}"); }, too_deep);
  expect_error([&] { ChatTemplate("{{ " + times("-", deep) + "1 }}"); }, too_deep);
  expect_error([&] { ChatTemplate("{{ x" + times("[x", deep) + times("]", deep) + " }}"); },
               too_deep);
  expect_error([&] { ChatTemplate("{{ f" + times("(f", deep) + times(")", deep) + " }}"); },
               too_deep);
  expect_error([&] { ChatTemplate("{{ 1" + times(" if x else 1", deep) + " }}"); }, too_deep);
  expect_error([&] { ChatTemplate(times("{% if x %}", deep) + times("{% endif %}", deep)); },
               "chat_template line 1: " + too_deep);
  expect_error([&] { ChatTemplate(times("{% for x in y %}", deep) + times("{% endfor %}", deep)); },
               too_deep);
  // Operator chains nest to the left without recursing in the parser; the tree they build is
  // bounded as well, since rendering and freeing it recurse.
  expect_error([&] { ChatTemplate("{{ 1" + times(" ~ 1", deep) + " }}"); }, too_deep);
  expect_error([&] { ChatTemplate("{{ x" + times(" or x", deep) + " }}"); }, too_deep);
  expect_error([&] { ChatTemplate("{{ x" + times(" | trim", deep) + " }}"); }, too_deep);
  expect_error([&] { ChatTemplate("{{ x" + times(".a", deep) + " }}"); }, too_deep);
  expect_error([&] { ChatTemplate("{{ x" + times("()", deep) + " }}"); }, too_deep);
  // Real templates nest a few levels; a hundred is fine.
  EXPECT_EQ(render("{{ " + times("(", 100) + "1" + times(")", 100) + " }}"), "1");
  EXPECT_EQ(render("{{ " + times("[", 100) + times("]", 100) + " | length }}"), "1");
  EXPECT_EQ(render(times("{% if true %}", 100) + "x" + times("{% endif %}", 100)), "x");
  EXPECT_EQ(render("{{ 1" + times(" ~ 1", 100) + " }}"), times("1", 101));
}

TEST(ChatTemplateLimits, DeepValuesAreARenderError) {
  // Values nested in a loop: each value an expression gives is checked.
  expect_error(
      [] {
        render(
            "{% set ns = namespace(x=1) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}"
            "{% endfor %}{{ ns.x }}");
      },
      "t line 1: value nested deeper than 200 levels");
  // loop.previtem nests the loop's items too
  expect_error(
      [] {
        render(
            "{% set ns = namespace(x=1) %}{% for i in range(100000) %}"
            "{% for y in [ns.x, 0] %}{% set ns.x = loop %}{% endfor %}{% endfor %}");
      },
      "value nested deeper than 200 levels");
  // A context nested deeper is refused before anything recurses into it.
  json deep = 1;
  for (int k = 0; k < 1000; ++k) {
    json outer = json::array();
    outer.push_back(std::move(deep));
    deep = std::move(outer);
  }
  expect_error(
      [&] {
        render("{{ x }}", {{"x", deep}});
      },
      "chat template context: nested deeper than 200 levels");
  json shallow = 1;
  for (int k = 0; k < 100; ++k) {
    json outer = json::array();
    outer.push_back(std::move(shallow));
    shallow = std::move(outer);
  }
  EXPECT_EQ(render("{{ x | length }}{{ x | tojson | length }}", {{"x", shallow}}), "1201");
}

TEST(ChatTemplateLimits, NamespaceCyclesAndChainsAreFreed) {
  // A namespace may hold itself (LeakSanitizer would report the cycle if it were not broken).
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.me = ns %}{% set ns.l = [ns, ns] %}"
                   "{{ ns.me.me.me.l | length }} {{ ns.me == ns }} {{ ns.l }}"),
            "2 True [<Namespace>, <Namespace>]");
  // A chain of namespaces, each holding the one before, is freed without a deep recursion.
  EXPECT_EQ(render("{% set ns = namespace(p=none) %}{% for i in range(30000) %}"
                   "{% set ns.p = namespace(p=ns.p, i=i) %}{% endfor %}{{ ns.p.p.p.i }}"),
            "29997");
}

TEST(ChatTemplateLimits, StepsAreBounded) {
  RenderLimits defaults;
  EXPECT_EQ(defaults.max_steps, 20'000'000);
  EXPECT_EQ(defaults.max_bytes, size_t{64} << 20);
  const std::string too_long =
      "t: rendering took more than 200000 steps; the template loops too long";
  // 10^10 iterations
  expect_error(
      [] {
        render_limited(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
            "{% endfor %}",
            200'000, 1 << 20);
      },
      too_long);
  expect_error(
      [] {
        render_limited(
            "{% set ns = namespace(c=0) %}{% for i in range(100000) %}"
            "{% for j in range(100000) if j > 5 %}{% set ns.c = ns.c + j %}{% endfor %}"
            "{% endfor %}{{ ns.c }}",
            200'000, 1 << 20);
      },
      too_long);
  // Lists that share items: printing, serializing or comparing one visits 2^40 items.
  const std::string shared = "{% set a = [1, 2] %}{% set b = [1, 2] %}" +
                             times("{% set a = [a, a] %}{% set b = [b, b] %}", 40);
  expect_error([&] { render_limited(shared + "{{ a == b }}", 200'000, 1 << 20); }, too_long);
  expect_error([&] { render_limited(shared + "{{ a[0] < b[1] }}", 200'000, 1 << 20); }, too_long);
  expect_error([&] { render_limited(shared + "{{ a in [b] }}", 200'000, 1 << 20); }, too_long);
  expect_error([&] { render_limited(shared + "{{ a }}", 200'000, size_t{64} << 20); }, too_long);
  expect_error([&] { render_limited(shared + "{{ a | tojson }}", 200'000, size_t{64} << 20); },
               too_long);
  // Strings count by their bytes (each copy costs), so the default budget is spent quickly here.
  expect_error([] { render("{% for i in range(100) %}{% set s = 'x' * 60000000 %}{% endfor %}"); },
               "t: rendering took more than 20000000 steps; the template loops too long");
  // A real template takes under a hundred steps a message.
  std::vector<ChatMessage> messages;
  for (int k = 0; k < 1000; ++k) messages.push_back({k % 2 ? "assistant" : "user", "hello"});
  ChatTemplate smollm2(fixture().at("templates").at("smollm2").get<std::string>());
  std::string want = smollm2.apply(messages, true);
  json ctx = {{"messages", json::array()}, {"add_generation_prompt", true}};
  for (const auto& m : messages)
    ctx["messages"].push_back({{"role", m.role}, {"content", m.content}});
  EXPECT_EQ(smollm2.render(ctx, RenderLimits{100'000, 1 << 20}), want);
  expect_error([&] { smollm2.render(ctx, RenderLimits{0, 1}); }, "render limits must be positive");
}

TEST(ChatTemplateLimits, StringsAreBounded) {
  // Repetition is checked before anything is built.
  expect_error([] { render("{{ 'a' * 10**9 }}"); }, "t line 1: string larger than 64 MiB");
  expect_error([] { render("{{ 10**18 * 'ab' }}"); }, "t line 1: string larger than 64 MiB");
  EXPECT_EQ(render("{{ 'ab' * -3 }}|{{ [1] * 0 }}|{{ 'ab' * 3 }}|{{ 2 * (1,) }}|{{ 'é' * 2 }}"),
            "|[]|ababab|(1, 1)|éé");
  // Doubling a string: without a limit, 2^100 bytes.
  expect_error(
      [] {
        render_limited("{% set s = 'ab' %}" + times("{% set s = s ~ s %}", 100), 20'000'000,
                       1 << 20);
      },
      "t line 1: string larger than 1 MiB");
  expect_error(
      [] {
        render_limited(
            "{% set ns = namespace(s='ab') %}{% for i in range(100) %}"
            "{% set ns.s = ns.s + ns.s %}{% endfor %}",
            20'000'000, 1 << 20);
      },
      "t line 1: string larger than 1 MiB");
  // Replacing, joining and serializing check the string as it grows.
  expect_error(
      [] { render_limited("{{ ('a' * 1000).replace('', 'b' * 10000) }}", 20'000'000, 1 << 20); },
      "string larger than 1 MiB");
  expect_error([] { render_limited("{{ ('b' * 10000).join('a' * 1000) }}", 20'000'000, 1 << 20); },
               "string larger than 1 MiB");
  expect_error([] { render("{{ [[1]] | tojson(indent=10**12) }}"); }, "string larger than 64 MiB");
}

TEST(ChatTemplateLimits, ListsAreBounded) {
  expect_error([] { render("{{ [1, 2] * 10**9 }}"); },
               "t line 1: list or dict longer than 1048576 items");
  expect_error([] { render("{{ (1,) * 9223372036854775807 }}"); }, "longer than 1048576 items");
  expect_error(
      [] {
        render(
            "{% set ns = namespace(l=[1]) %}{% for i in range(100) %}"
            "{% set ns.l = ns.l + ns.l %}{% endfor %}");
      },
      "t line 1: list or dict longer than 1048576 items");
  expect_error([] { render("{{ ('a' * 2000000) | list | length }}"); },
               "longer than 1048576 items");
}

TEST(ChatTemplateLimits, SplitIsBounded) {
  expect_error([] { render("{{ ('a ' * 2000000).split() | length }}"); },
               "t line 1: list or dict longer than 1048576 items");
}

TEST(ChatTemplateLimits, OutputIsBounded) {
  expect_error(
      [] {
        render_limited("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", 20'000'000,
                       1 << 20);
      },
      "t: rendering output larger than 1 MiB");
  expect_error(
      [] { render("{% set s = 'x' * 10000000 %}{% for i in range(100) %}{{ s }}{% endfor %}"); },
      "t: rendering output larger than 64 MiB");
}

TEST(ChatTemplateLimits, IndicesAndSlicesAtTheIntegerLimits) {
  const std::string min = "(-9223372036854775807 - 1)", max = "9223372036854775807";
  // As Python: 'abc'[::-2**63] is 'c', and so on; no index arithmetic overflows.
  EXPECT_EQ(
      render("{{ 'abc'[::" + min + "] }}|{{ 'abcdef'[1::" + max + "] }}|{{ [1, 2, 3][" + min + ":" +
             max + "] }}|{{ [1, 2, 3][" + max + ":] }}|{{ [1, 2, 3][::" + min + "] }}|{{ 'abc'[" +
             min + "] is undefined }}|{{ [1][" + max + "] is undefined }}"),
      "c|b|[1, 2, 3]|[]|[3]|True|True");
  EXPECT_EQ(render("{{ 'héllo wörld'[::-3] }}|{{ 'héllo'[-2:] }}|{{ 'héllo'[1:4:2] }}|"
                   "{{ 'héllo'[-1] }}|{{ 'héllo' | first }}{{ 'héllo' | last }}|"
                   "{{ 'héllo'[10:0:-2] }}|{{ 'héllo'[-100:2] }}"),
            "döoé|lo|él|o|ho|ol|hé");
  expect_error([] { render("{{ 'abc'[::0] }}"); }, "t line 1: slice step cannot be zero");
  EXPECT_EQ(render("{{ " + min + " is divisibleby(-1) }}|{{ " + min + " % 7 }}"), "True|6");
  expect_error([&] { render("{{ " + min + " // -1 }}"); }, "integer overflow");
  // Float literals out of range are inf and 0, as in Python (not an exception).
  EXPECT_EQ(render("{{ 1e999 }}|{{ -1e999 }}|{{ 1e-999 }}"), "inf|-inf|0.0");
  expect_error([] { ChatTemplate("{{ '\\U00110000' }}"); },
               "chat_template line 1: string literal with an escape above \\U0010ffff");
  EXPECT_EQ(render("{{ '\\U0010ffff' | length }}"), "1");
}

TEST(ChatTemplateLimits, LongTemplatesAndStringsTakeLinearTime) {
  // A needle that almost matches everywhere: std::string::find compares ~10^10 bytes here.
  EXPECT_EQ(render("{% set n = 'a' * 100000 + 'b' %}{% set h = 'a' * 300000 %}"
                   "{{ n in h }}|{{ h.replace(n, 'x') | length }}|{{ h.split(n) | length }}|"
                   "{{ (h ~ 'b').replace(n, '') | length }}|{{ (h ~ n ~ h).split(n) | length }}|"
                   "{{ h.strip(n * 10) | length }}"),
            "False|300000|1|200000|2|0");
  // Line numbers are counted once, not from the start for each of 20000 tags.
  std::string many = times("{{ 1 }}\n", 20000);
  EXPECT_EQ(render(many).size(), 39999u);
  expect_error([&] { render(many + "{{ x.y }}"); }, "t line 20001: 'x' is undefined");
  expect_error([&] { ChatTemplate(many + "{{ 'abc }}"); }, "line 20001: unterminated string");
  // a dict has no method foo, even an empty one
  expect_error([] { render("{{ {}.foo() }}"); }, "'dict' object has no method 'foo'");
}
