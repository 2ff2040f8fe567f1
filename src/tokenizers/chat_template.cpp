// The chat-template engine (see chat_template.h): values with Python semantics, a lexer that
// splits the template into text and tags the way jinja2 does with trim_blocks and
// lstrip_blocks, a recursive-descent parser to a small tree, and a tree-walking renderer.
//
// Templates come from model files (GGUF metadata, tokenizer_config.json), so a hostile one must
// end in moxing::Error, never in a crash, a hang or exhausted memory: the parser bounds nesting
// (so that no recursion, parsing, rendering or freeing a tree, runs deep), values bound their
// nesting and size, and a render counts its work and output against a budget (see Limits).
#include "moxing/tokenizers/chat_template.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "moxing/core/error.h"

namespace moxing::tokenizers {

namespace {

// ---------------------------------------------------------------------------------------------
// Limits

/// Nesting in the parser (blocks in blocks, parentheses, lists, operands of unary operators),
/// depth of an expression tree, and nesting of list and dict values: each bounds a recursion.
constexpr int kMaxDepth = 200;
/// The costs of RenderLimits::max_steps: one step per statement and expression node evaluated,
/// kLoopSteps per loop iteration, kItemSteps per list or dict item built or copied, and one per
/// kBytesPerStep bytes of string built or copied (strings are values, copied when passed on).
constexpr int64_t kLoopSteps = 10;
constexpr int64_t kItemSteps = 4;
constexpr int64_t kBytesPerStep = 16;
/// Any one list or dict value.
constexpr size_t kMaxItems = size_t{1} << 20;

[[noreturn]] void too_deep(const std::string& where, int line) {
  fail("{} line {}: nesting deeper than {} levels", where, line, kMaxDepth);
}

// ---------------------------------------------------------------------------------------------
// Values

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;

/// A template value: Python's None/bool/int/float/str/list/tuple/dict, jinja2's Undefined (s
/// holds the message its misuse raises) and namespace (a mutable dict shared by copies). Lists
/// and dicts are immutable once built, so their nesting depth is known; a namespace counts as
/// one level whatever it holds (nothing recurses into one: it prints as <Namespace>, compares
/// by identity and is not JSON).
struct Value {
  enum class K : uint8_t { Undef, None, Bool, Int, Float, Str, List, Dict, Ns };
  K k = K::Undef;
  bool b = false;
  bool tuple = false;
  int16_t depth = 0;  // 0 for scalars, 1 + the deepest item for lists and dicts
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;

  static Value undef(std::string why) {
    return make(K::Undef, [&](Value& v) { v.s = why; });
  }
  static Value none() {
    return make(K::None, [](Value&) {});
  }
  static Value boolean(bool x) {
    return make(K::Bool, [&](Value& v) { v.b = x; });
  }
  static Value integer(int64_t x) {
    return make(K::Int, [&](Value& v) { v.i = x; });
  }
  static Value real(double x) {
    return make(K::Float, [&](Value& v) { v.f = x; });
  }
  static Value str(std::string x) {
    return make(K::Str, [&](Value& v) { v.s = std::move(x); });
  }
  static Value list_of(List x, bool tuple = false) {
    return make(K::List, [&](Value& v) {
      int d = 0;
      for (const Value& item : x) d = std::max<int>(d, item.depth);
      v.depth = nest(d);
      v.list = std::make_shared<List>(std::move(x));
      v.tuple = tuple;
    });
  }
  static Value dict_of(Dict x, K k = K::Dict) {
    return make(k, [&](Value& v) {
      int d = 0;
      if (k == K::Dict) {
        for (const auto& item : x) d = std::max<int>(d, item.second.depth);
      }
      v.depth = nest(d);
      v.dict = std::make_shared<Dict>(std::move(x));
    });
  }
  // One level above d; saturates (the renderer refuses values deeper than kMaxDepth long
  // before).
  static int16_t nest(int d) { return static_cast<int16_t>(std::min(d + 1, 30000)); }
  template <class F>
  static Value make(K k, F&& init) {
    Value v;
    v.k = k;
    init(v);
    return v;
  }

  bool is(K kind) const { return k == kind; }
  bool numeric() const { return k == K::Bool || k == K::Int || k == K::Float; }
  double num() const { return k == K::Float ? f : k == K::Int ? static_cast<double>(i) : b; }
  int64_t as_int() const { return k == K::Int ? i : b; }
  const Value* find(const std::string& key) const {
    for (const auto& [name, v] : *dict) {
      if (name == key) return &v;
    }
    return nullptr;
  }
};

using K = Value::K;

const char* type_name(const Value& v) {
  switch (v.k) {
    case K::Undef:
      return "Undefined";
    case K::None:
      return "NoneType";
    case K::Bool:
      return "bool";
    case K::Int:
      return "int";
    case K::Float:
      return "float";
    case K::Str:
      return "str";
    case K::List:
      return v.tuple ? "tuple" : "list";
    case K::Dict:
      return "dict";
    case K::Ns:
      return "Namespace";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.k) {
    case K::Undef:
    case K::None:
      return false;
    case K::Bool:
      return v.b;
    case K::Int:
      return v.i != 0;
    case K::Float:
      return v.f != 0;
    case K::Str:
      return !v.s.empty();
    case K::List:
      return !v.list->empty();
    case K::Dict:
      return !v.dict->empty();
    case K::Ns:
      return true;
  }
  return false;
}

// a * b, or SIZE_MAX when that overflows.
size_t saturating_mul(size_t a, uint64_t b) {
  size_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

// "64 MiB", or "1000 bytes".
std::string describe_bytes(size_t n) {
  if (n >= (size_t{1} << 20) && n % (size_t{1} << 20) == 0) return fmt::format("{} MiB", n >> 20);
  return fmt::format("{} bytes", n);
}

/// The limits of one render (see RenderLimits): counts its steps, and checks the sizes of the
/// strings and lists it builds and of its output. where and line (the line being evaluated)
/// name the template in errors.
class Budget {
 public:
  Budget(const std::string& where, const int& line, const RenderLimits& limits)
      : where_(where), line_(line), limits_(limits) {}

  void step(int64_t n = 1) {
    if (n > limits_.max_steps - steps_) {
      fail("{}: rendering took more than {} steps; the template loops too long", where_,
           limits_.max_steps);
    }
    steps_ += n;
  }
  // Building or copying n bytes of string.
  void bytes(size_t n) { step(static_cast<int64_t>(n / kBytesPerStep)); }
  // Building or copying a list or dict of n items.
  void items(size_t n) {
    check_items(n);
    step(kItemSteps * static_cast<int64_t>(n));
  }
  // Copying a list: its items' strings are copied, their lists and dicts shared.
  void copy(const List& l) {
    items(l.size());
    for (const Value& v : l) bytes(v.s.size());
  }

  void check_string(size_t size) const {
    if (size > limits_.max_bytes) {
      fail("{} line {}: string larger than {}", where_, line_, describe_bytes(limits_.max_bytes));
    }
  }
  void check_items(size_t n) const {
    if (n > kMaxItems) {
      fail("{} line {}: list or dict longer than {} items", where_, line_, kMaxItems);
    }
  }
  void check_output(size_t size) const {
    if (size > limits_.max_bytes) {
      fail("{}: rendering output larger than {}", where_, describe_bytes(limits_.max_bytes));
    }
  }
  void check_depth(const Value& v) const {
    if (v.depth > kMaxDepth) {
      fail("{} line {}: value nested deeper than {} levels", where_, line_, kMaxDepth);
    }
  }

 private:
  const std::string& where_;
  const int& line_;
  RenderLimits limits_;
  int64_t steps_ = 0;
};

// Python's float repr: the shortest round-trip digits, fixed notation for exponents in
// [-4, 16), else d.ddde+XX.
std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign = sci[0] == '-' ? "-" : "";
  if (!sign.empty()) sci.erase(0, 1);
  size_t e = sci.find('e');
  int exp = std::stoi(sci.substr(e + 1));
  std::string digits = sci.substr(0, 1) + (e > 2 ? sci.substr(2, e - 2) : "");
  if (exp >= -4 && exp < 16) {
    std::string out;
    if (exp < 0) {
      out = "0." + std::string(-exp - 1, '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp + 1) {
      out = digits + std::string(exp + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
    }
    return sign + out;
  }
  std::string mant = digits.size() > 1 ? digits.substr(0, 1) + "." + digits.substr(1) : digits;
  return fmt::format("{}{}e{}{:02d}", sign, mant, exp < 0 ? '-' : '+', std::abs(exp));
}

// Python's repr of a str: single quotes unless the text has ' and no ".
std::string str_repr(const std::string& s) {
  char q = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\' || c == static_cast<unsigned char>(q)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + q;
}

/// Appends Python's str(v) (or repr(v)) to out. Lists may share items, so that a small value
/// prints as gigabytes: each item costs a step and out is checked as it grows.
void append_str(std::string& out, const Value& v, Budget& budget, bool as_repr) {
  budget.step();
  switch (v.k) {
    case K::Undef:
      break;
    case K::None:
      out += "None";
      break;
    case K::Bool:
      out += v.b ? "True" : "False";
      break;
    case K::Int:
      out += std::to_string(v.i);
      break;
    case K::Float:
      out += float_repr(v.f);
      break;
    case K::Str:
      budget.bytes(v.s.size());
      out += as_repr ? str_repr(v.s) : v.s;
      break;
    case K::List:
      out += v.tuple ? "(" : "[";
      for (size_t n = 0; n < v.list->size(); ++n) {
        if (n) out += ", ";
        append_str(out, (*v.list)[n], budget, true);
        budget.check_string(out.size());
      }
      if (v.tuple && v.list->size() == 1) out += ",";
      out += v.tuple ? ")" : "]";
      break;
    case K::Dict:
      out += "{";
      for (size_t n = 0; n < v.dict->size(); ++n) {
        const auto& [key, item] = (*v.dict)[n];
        out += (n ? ", " : "") + str_repr(key) + ": ";
        append_str(out, item, budget, true);
        budget.check_string(out.size());
      }
      out += "}";
      break;
    case K::Ns:
      out += "<Namespace>";
      break;
  }
  budget.check_string(out.size());
}

/// Python's str(): what `{{ v }}`, `~` and the string filter produce.
std::string to_str(const Value& v, Budget& budget) {
  if (v.is(K::Str)) return v.s;
  std::string out;
  append_str(out, v, budget, false);
  return out;
}

/// A JSON context as values; depth counts the levels above j.
Value from_json(const nlohmann::json& j, int depth = 0) {
  if (depth > kMaxDepth && (j.is_array() || j.is_object())) {
    fail("chat template context: nested deeper than {} levels", kMaxDepth);
  }
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::none();
    case nlohmann::json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value::integer(static_cast<int64_t>(u));
      return Value::real(static_cast<double>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value::real(j.get<double>());
    case nlohmann::json::value_t::string:
      return Value::str(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      List l;
      for (const auto& x : j) l.push_back(from_json(x, depth + 1));
      return Value::list_of(std::move(l));
    }
    case nlohmann::json::value_t::object: {
      Dict d;
      for (const auto& [key, x] : j.items()) d.emplace_back(key, from_json(x, depth + 1));
      return Value::dict_of(std::move(d));
    }
    default:
      fail("chat template context: unsupported JSON value {}", j.dump());
  }
}

// json.dumps(v, ensure_ascii=False) string escaping.
std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

/// What to_json throws for a value JSON cannot hold; the caller turns it into an error.
struct NotJson {
  const char* type;
};

/// Appends json.dumps(v, ensure_ascii=False, indent=indent) to out (indent < 0: None). Like
/// append_str, it counts items and checks the length of out as it grows.
void append_json(std::string& out, const Value& v, int64_t indent, Budget& budget,
                 int64_t depth = 0) {
  budget.step();
  auto sep = [&](int64_t d) {
    if (indent < 0) return;
    size_t spaces = saturating_mul(static_cast<size_t>(indent), static_cast<uint64_t>(d));
    budget.check_string(out.size() + std::min(spaces, SIZE_MAX - out.size()));
    out += '\n';
    out.append(spaces, ' ');
  };
  const char* comma = indent < 0 ? ", " : ",";
  switch (v.k) {
    case K::None:
      out += "null";
      break;
    case K::Bool:
      out += v.b ? "true" : "false";
      break;
    case K::Int:
      out += std::to_string(v.i);
      break;
    case K::Float:
      if (std::isnan(v.f)) {
        out += "NaN";
      } else if (std::isinf(v.f)) {
        out += v.f > 0 ? "Infinity" : "-Infinity";
      } else {
        out += float_repr(v.f);
      }
      break;
    case K::Str:
      budget.bytes(v.s.size());
      out += json_str(v.s);
      break;
    case K::List:
      if (v.list->empty()) {
        out += "[]";
        break;
      }
      out += "[";
      for (size_t n = 0; n < v.list->size(); ++n) {
        if (n) out += comma;
        sep(depth + 1);
        append_json(out, (*v.list)[n], indent, budget, depth + 1);
        budget.check_string(out.size());
      }
      sep(depth);
      out += "]";
      break;
    case K::Dict:
      if (v.dict->empty()) {
        out += "{}";
        break;
      }
      out += "{";
      for (size_t n = 0; n < v.dict->size(); ++n) {
        const auto& [key, item] = (*v.dict)[n];
        if (n) out += comma;
        sep(depth + 1);
        out += json_str(key) + ": ";
        append_json(out, item, indent, budget, depth + 1);
        budget.check_string(out.size());
      }
      sep(depth);
      out += "}";
      break;
    default:
      throw NotJson{type_name(v)};
  }
  budget.check_string(out.size());
}

// ---------------------------------------------------------------------------------------------
// UTF-8 helpers: strings index, slice and count by code point, as Python's str does. A code
// point starts at byte 0 and at each byte that is not a continuation byte (10xxxxxx); they are
// walked in place, since a string may be megabytes long.

bool cp_start(const std::string& s, size_t n) {
  return n == 0 || (static_cast<unsigned char>(s[n]) & 0xC0) != 0x80;
}

size_t cp_count(const std::string& s) {
  size_t count = 0;
  for (size_t n = 0; n < s.size(); ++n) count += cp_start(s, n);
  return count;
}

// The start of the code point after the one at n (s.size() after the last).
size_t cp_next(const std::string& s, size_t n) {
  for (++n; n < s.size() && !cp_start(s, n);) ++n;
  return n;
}

// The start of the code point before the one at n (n > 0).
size_t cp_prev(const std::string& s, size_t n) {
  for (--n; !cp_start(s, n);) --n;
  return n;
}

// The start of code point k (k < cp_count(s)).
size_t cp_offset(const std::string& s, int64_t k) {
  size_t n = 0;
  for (; k > 0; --k) n = cp_next(s, n);
  return n;
}

std::string cp_at(const std::string& s, size_t n) { return s.substr(n, cp_next(s, n) - n); }

/// Finds a needle in linear time: std::string::find compares the needle at every position,
/// quadratic for a long needle, and template strings may be megabytes long.
class Finder {
 public:
  explicit Finder(const std::string& needle) : needle_(needle) {
    if (needle_.size() <= kShort) return;
    fallback_.assign(needle_.size(), 0);  // Knuth-Morris-Pratt: longest proper border
    for (size_t q = 1, k = 0; q < needle_.size(); ++q) {
      while (k > 0 && needle_[q] != needle_[k]) k = fallback_[k - 1];
      if (needle_[q] == needle_[k]) ++k;
      fallback_[q] = k;
    }
  }

  // The first match at or after from, or npos.
  size_t find(const std::string& hay, size_t from) const {
    if (needle_.size() <= kShort || from > hay.size()) return hay.find(needle_, from);
    for (size_t p = from, k = 0; p < hay.size(); ++p) {
      while (k > 0 && hay[p] != needle_[k]) k = fallback_[k - 1];
      if (hay[p] == needle_[k]) ++k;
      if (k == needle_.size()) return p + 1 - k;
    }
    return std::string::npos;
  }

 private:
  static constexpr size_t kShort = 32;  // std::string::find: at most 32 compares a position
  const std::string& needle_;
  std::vector<size_t> fallback_;
};

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string strip(const std::string& s, bool left, bool right, const std::string* chars = nullptr) {
  bool in_chars[256] = {};
  if (chars) {
    for (unsigned char c : *chars) in_chars[c] = true;
  }
  auto drop = [&](char c) { return chars ? in_chars[static_cast<unsigned char>(c)] : is_space(c); };
  size_t a = 0, b = s.size();
  while (left && a < b && drop(s[a])) ++a;
  while (right && b > a && drop(s[b - 1])) --b;
  return s.substr(a, b - a);
}

// ---------------------------------------------------------------------------------------------
// Template lexer: text and tags, with jinja2's whitespace control, trim_blocks and
// lstrip_blocks.

/// A piece of the template: literal text, the inside of {{ }} or the inside of {% %}.
struct Segment {
  enum class S { Text, Var, Block } s;
  std::string text;
  int line;
};

/// jinja2 with keep_trailing_newline=False: newlines normalized to \n, one trailing \n dropped.
std::string normalize_newlines(const std::string& src) {
  std::string out;
  out.reserve(src.size());
  for (size_t n = 0; n < src.size(); ++n) {
    if (src[n] == '\r') {
      out += '\n';
      if (n + 1 < src.size() && src[n + 1] == '\n') ++n;
    } else {
      out += src[n];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class TemplateLexer {
 public:
  TemplateLexer(const std::string& src, const std::string& where) : src_(src), where_(where) {}

  std::vector<Segment> run() {
    while (pos_ < src_.size()) {
      size_t q = find_tag(pos_);
      if (q == std::string::npos) {
        add_text(src_.substr(pos_));
        break;
      }
      tag(q);
    }
    return std::move(out_);
  }

 private:
  const std::string& src_;
  const std::string& where_;
  std::vector<Segment> out_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  size_t counted_ = 0;  // line_at: the newlines before counted_ are counted in lines_
  int lines_ = 0;

  [[noreturn]] void error(size_t at, const std::string& msg) {
    fail("{} line {}: {}", where_, line_at(at), msg);
  }
  // Tags come in order, so each newline is counted once (a template may have a million tags).
  int line_at(size_t at) {
    if (at < counted_) {
      counted_ = 0;
      lines_ = 0;
    }
    lines_ += static_cast<int>(std::count(src_.begin() + static_cast<std::ptrdiff_t>(counted_),
                                          src_.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
    counted_ = at;
    return 1 + lines_;
  }
  size_t find_tag(size_t from) const {
    for (size_t q = src_.find('{', from); q != std::string::npos; q = src_.find('{', q + 1)) {
      if (q + 1 < src_.size() && (src_[q + 1] == '{' || src_[q + 1] == '%' || src_[q + 1] == '#')) {
        return q;
      }
    }
    return std::string::npos;
  }
  void add_text(std::string text) {
    if (!text.empty()) out_.push_back({Segment::S::Text, std::move(text), 0});
  }
  bool at(size_t p, const char* s) const {
    return src_.compare(p, std::char_traits<char>::length(s), s) == 0;
  }

  // The text before the tag at q, with {%- / {{- and lstrip_blocks applied, then the tag.
  void tag(size_t q) {
    char kind = src_[q + 1];
    char sign = q + 2 < src_.size() ? src_[q + 2] : '\0';
    std::string text = src_.substr(pos_, q - pos_);
    if (sign == '-') {
      text = strip(text, false, true);
    } else if (sign != '+' && kind != '{') {
      size_t l_pos = text.rfind('\n') + 1;  // npos + 1 == 0
      if ((l_pos > 0 || line_starting_) &&
          text.find_first_not_of(" \t", l_pos) == std::string::npos) {
        text.resize(l_pos);
      }
    }
    add_text(std::move(text));
    size_t body = q + 2 + (sign == '-' || sign == '+' ? 1 : 0);
    size_t end = kind == '#' ? comment_end(q, body) : tag_end(q, body, kind);
    line_starting_ = src_[end - 1] == '\n';
    pos_ = end;
  }

  // Returns the position after the closing #} and the whitespace it removes.
  size_t comment_end(size_t q, size_t body) {
    size_t c = src_.find("#}", body);
    if (c == std::string::npos) error(q, "unclosed comment {# (no #})");
    return after_close(c + 2, c > body ? src_[c - 1] : '\0', true);
  }

  // Scans the tag's tokens (skipping strings) to its }} or %}; adds the segment.
  size_t tag_end(size_t q, size_t body, char kind) {
    const char* close = kind == '{' ? "}}" : "%}";
    for (size_t p = body; p < src_.size(); ++p) {
      char c = src_[p];
      if (c == '\'' || c == '"') {
        p = skip_string(p);
      } else if ((c == '-' || c == '+') && at(p + 1, close)) {
        add_tag(kind, body, p, q);
        return after_close(p + 3, c, kind == '%');
      } else if (at(p, close)) {
        add_tag(kind, body, p, q);
        return after_close(p + 2, '\0', kind == '%');
      }
    }
    error(q, fmt::format("unclosed {}{} (no {})", '{', kind, close));
  }

  void add_tag(char kind, size_t body, size_t end, size_t q) {
    out_.push_back({kind == '{' ? Segment::S::Var : Segment::S::Block,
                    src_.substr(body, end - body), line_at(q)});
  }

  // p is just past the closing delimiter; sign is the - or + before it. Block and comment
  // ends eat one newline (trim_blocks) unless marked +; - eats all whitespace.
  size_t after_close(size_t p, char sign, bool block) const {
    if (sign == '-') {
      while (p < src_.size() && is_space(src_[p])) ++p;
    } else if (sign != '+' && block && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    return p;
  }

  size_t skip_string(size_t p) {
    char quote = src_[p];
    for (size_t n = p + 1; n < src_.size(); ++n) {
      if (src_[n] == '\\') {
        ++n;
      } else if (src_[n] == quote) {
        return n;
      }
    }
    error(p, "unterminated string literal");
  }
};

// ---------------------------------------------------------------------------------------------
// Expression tokens

struct Tok {
  enum class T { Name, Str, Int, Float, Op, End } t;
  std::string s;  // name, unescaped string, operator
  int64_t i = 0;
  double f = 0;
  int line = 0;
};
using T = Tok::T;

/// Python's string-literal escapes (jinja2 decodes literals with unicode-escape). False for an
/// escape Python refuses (a code point above U+10FFFF).
bool unescape(const std::string& s, std::string& out) {
  for (size_t n = 0; n < s.size(); ++n) {
    if (s[n] != '\\' || n + 1 == s.size()) {
      out += s[n];
      continue;
    }
    char c = s[++n];
    static const std::map<char, char> simple = {
        {'n', '\n'}, {'t', '\t'}, {'r', '\r'}, {'\\', '\\'}, {'\'', '\''}, {'"', '"'},
        {'a', '\a'}, {'b', '\b'}, {'f', '\f'}, {'v', '\v'},  {'0', '\0'}};
    int hex = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
    if (auto it = simple.find(c); it != simple.end()) {
      out += it->second;
    } else if (c == '\n') {
      // a backslash-newline continues the line
    } else if (hex && n + hex < s.size() &&
               s.find_first_not_of("0123456789abcdefABCDEF", n + 1) >= n + 1 + hex) {
      auto cp = static_cast<uint32_t>(std::stoul(s.substr(n + 1, hex), nullptr, 16));
      if (cp > 0x10FFFF) return false;
      append_utf8(out, cp);
      n += hex;
    } else {
      out += '\\';
      out += c;
    }
  }
  return true;
}

class ExprLexer {
 public:
  ExprLexer(const std::string& src, int line, const std::string& where)
      : src_(src), line_(line), where_(where) {}

  std::vector<Tok> run() {
    std::vector<Tok> out;
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) {
        if (src_[pos_++] == '\n') ++line_;
      }
      if (pos_ == src_.size()) break;
      out.push_back(next());
    }
    out.push_back({T::End, "", 0, 0, line_});
    return out;
  }

 private:
  const std::string& src_;
  size_t pos_ = 0;
  int line_;
  const std::string& where_;

  static bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

  Tok next() {
    char c = src_[pos_];
    if (std::isdigit(static_cast<unsigned char>(c))) return number();
    if (name_char(c)) {
      size_t b = pos_;
      while (pos_ < src_.size() && name_char(src_[pos_])) ++pos_;
      return {T::Name, src_.substr(b, pos_ - b), 0, 0, line_};
    }
    if (c == '\'' || c == '"') return string();
    static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*",
                                "/",  "%",  "~",  "<",  ">",  "(",  ")", "[", "]",
                                "{",  "}",  ",",  ".",  ":",  "|",  "="};
    for (const char* op : ops) {
      if (src_.compare(pos_, std::char_traits<char>::length(op), op) == 0) {
        pos_ += std::char_traits<char>::length(op);
        return {T::Op, op, 0, 0, line_};
      }
    }
    fail("{} line {}: unexpected character '{}'", where_, line_, c);
  }

  Tok number() {
    size_t b = pos_;
    auto digits = [&] {
      while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) ++pos_;
    };
    digits();
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t e =
          pos_ + 1 + (pos_ + 1 < src_.size() && (src_[pos_ + 1] == '+' || src_[pos_ + 1] == '-'));
      if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
        is_float = true;
        pos_ = e;
        digits();
      }
    }
    std::string text = src_.substr(b, pos_ - b);
    // strtod, not stod: 1e999 is inf and 1e-999 is 0 in Python, not an exception.
    if (is_float) return {T::Float, text, 0, std::strtod(text.c_str(), nullptr), line_};
    int64_t v = 0;
    auto res = std::from_chars(text.data(), text.data() + text.size(), v);
    if (res.ec != std::errc()) fail("{} line {}: integer {} is too large", where_, line_, text);
    return {T::Int, text, v, 0, line_};
  }

  Tok string() {
    char quote = src_[pos_];
    size_t b = ++pos_;
    int start_line = line_;
    while (pos_ < src_.size() && src_[pos_] != quote) {
      if (src_[pos_] == '\\') ++pos_;
      if (pos_ < src_.size() && src_[pos_] == '\n') ++line_;
      ++pos_;
    }
    if (pos_ >= src_.size()) fail("{} line {}: unterminated string literal", where_, start_line);
    std::string raw = src_.substr(b, pos_ - b);
    ++pos_;
    std::string text;
    if (!unescape(raw, text)) {
      fail("{} line {}: string literal with an escape above \\U0010ffff", where_, start_line);
    }
    return {T::Str, std::move(text), 0, 0, start_line};
  }
};

// ---------------------------------------------------------------------------------------------
// Syntax tree

struct Expr;
using ExprP = std::unique_ptr<Expr>;

/// An expression. args holds the operands: Attr [obj]; Item [obj, key]; Slice [obj, start,
/// stop, step] (null when omitted); Call [callee, positional...]; Filter and Test [value,
/// positional...]; Bin and Cmp the operands in order; Cond [then, cond, else or null];
/// DictLit key, value, key, value...
struct Expr {
  enum class E {
    Lit,
    Name,
    Attr,
    Item,
    Slice,
    Call,
    Filter,
    Test,
    Neg,
    Pos,
    Not,
    Bin,
    Cmp,
    And,
    Or,
    Cond,
    ListLit,
    TupleLit,
    DictLit
  };
  E e;
  int line = 0;
  int depth = 1;  // of the tree below and including this node: at most kMaxDepth
  Value lit;
  std::string name;  // Name, Attr, Filter, Test; the operator of Bin
  std::vector<ExprP> args;
  std::vector<std::pair<std::string, ExprP>> kwargs;
  std::vector<std::string> ops;  // Cmp: ==, !=, <, <=, >, >=, in, notin
  bool negate = false;           // Test: is not
};
using E = Expr::E;

struct Node;

struct Branch {
  ExprP cond;  // null: else
  std::vector<Node> body;
};

/// A statement: text, {{ expr }}, if, for or set.
struct Node {
  enum class N { Text, Out, If, For, Set } n;
  int line = 0;
  std::string text;
  ExprP expr;                        // Out; For's iterable; Set's value
  std::vector<Branch> branches;      // If
  std::vector<std::string> targets;  // For and Set names
  std::string attr;                  // Set ns.attr: targets = {ns}
  ExprP cond;                        // for ... if cond
  std::vector<Node> body, orelse;    // For
};
using N = Node::N;

const std::set<std::string> kFilters = {"trim",    "length", "count",      "upper",   "lower",
                                        "tojson",  "string", "first",      "last",    "join",
                                        "default", "d",      "capitalize", "replace", "int",
                                        "float",   "list",   "items",      "abs"};
const std::set<std::string> kTests = {"defined",     "undefined", "none",     "string",  "number",
                                      "mapping",     "iterable",  "sequence", "boolean", "integer",
                                      "float",       "true",      "false",    "odd",     "even",
                                      "divisibleby", "eq",        "equalto",  "ne",      "in"};
// ---------------------------------------------------------------------------------------------
// Parser

class Parser {
 public:
  Parser(std::vector<Segment> segs, const std::string& where)
      : segs_(std::move(segs)), where_(where) {}

  std::vector<Node> run() {
    std::string end;
    auto body = parse_body({}, &end, "", 0);
    return body;
  }

 private:
  std::vector<Segment> segs_;
  size_t seg_ = 0;
  const std::string& where_;
  std::vector<Tok> toks_;
  size_t pos_ = 0;
  int nesting_ = 0;

  [[noreturn]] void error(int line, const std::string& msg) const {
    fail("{} line {}: {}", where_, line, msg);
  }

  /// One level of recursion: a block in a block, or an expression in an expression. Every
  /// recursion of the parser passes through one, so its depth is bounded.
  class Nest {
   public:
    Nest(Parser& p, int line) : p_(p) {
      if (++p_.nesting_ > kMaxDepth) too_deep(p_.where_, line);
    }
    ~Nest() { --p_.nesting_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;

   private:
    Parser& p_;
  };

  // --- statements

  // Parses nodes until a block tag whose keyword is in ends (stored in *end; the tokens are
  // left after it) or, when ends is empty, the end of the template.
  std::vector<Node> parse_body(const std::set<std::string>& ends, std::string* end,
                               const std::string& opener, int open_line) {
    std::vector<Node> nodes;
    while (seg_ < segs_.size()) {
      Segment& s = segs_[seg_++];
      if (s.s == Segment::S::Text) {
        nodes.push_back(Node{N::Text, s.line, std::move(s.text), {}, {}, {}, {}, {}, {}, {}});
        continue;
      }
      toks_ = ExprLexer(s.text, s.line, where_).run();
      pos_ = 0;
      if (s.s == Segment::S::Var) {
        Node n{N::Out, s.line, {}, parse_expr(), {}, {}, {}, {}, {}, {}};
        expect_end("}}");
        nodes.push_back(std::move(n));
        continue;
      }
      if (cur().t != T::Name) error(s.line, "expected a tag name after {%");
      std::string kw = take().s;
      if (ends.count(kw)) {
        *end = kw;
        return nodes;
      }
      nodes.push_back(statement(kw, s.line));
    }
    if (!ends.empty()) {
      error(open_line, fmt::format("unclosed {{% {} %}} (no {{% {} %}})", opener,
                                   opener == "if" ? "endif" : "endfor"));
    }
    return nodes;
  }

  Node statement(const std::string& kw, int line) {
    if (kw == "if") return parse_if(line);
    if (kw == "for") return parse_for(line);
    if (kw == "set") return parse_set(line);
    if (kw == "elif" || kw == "else" || kw == "endif" || kw == "endfor") {
      error(line, fmt::format("unexpected {{% {} %}}", kw));
    }
    error(line, fmt::format("{{% {} %}} is outside the supported Jinja subset", kw));
  }

  Node parse_if(int line) {
    Nest nest(*this, line);
    Node n{N::If, line, {}, {}, {}, {}, {}, {}, {}, {}};
    std::string end = "elif";
    while (end == "elif") {
      ExprP cond = parse_expr();
      expect_end("%}");
      auto body = parse_body({"elif", "else", "endif"}, &end, "if", line);
      n.branches.push_back({std::move(cond), std::move(body)});
    }
    if (end == "else") {
      expect_end("%}");
      auto body = parse_body({"endif"}, &end, "if", line);
      n.branches.push_back({nullptr, std::move(body)});
    }
    expect_end("%}");
    return n;
  }

  Node parse_for(int line) {
    Nest nest(*this, line);
    Node n{N::For, line, {}, {}, {}, {}, {}, {}, {}, {}};
    n.targets = parse_targets();
    if (!(cur().t == T::Name && take().s == "in")) error(line, "expected 'in' in {% for %}");
    n.expr = parse_or();
    if (accept_name("if")) n.cond = parse_expr();
    if (cur().t == T::Name && cur().s == "recursive") {
      error(line, "recursive {% for %} is outside the supported Jinja subset");
    }
    expect_end("%}");
    std::string end;
    n.body = parse_body({"else", "endfor"}, &end, "for", line);
    if (end == "else") {
      expect_end("%}");
      n.orelse = parse_body({"endfor"}, &end, "for", line);
    }
    expect_end("%}");
    return n;
  }

  Node parse_set(int line) {
    Node n{N::Set, line, {}, {}, {}, {}, {}, {}, {}, {}};
    n.targets = parse_targets();
    if (n.targets.size() == 1 && accept_op(".")) {
      if (cur().t != T::Name) error(line, "expected an attribute name in {% set %}");
      n.attr = take().s;
    }
    if (cur().t == T::End) error(line, "block {% set %} is outside the supported Jinja subset");
    if (!accept_op("=")) error(line, "expected '=' in {% set %}");
    n.expr = parse_tuple();
    expect_end("%}");
    return n;
  }

  std::vector<std::string> parse_targets() {
    bool paren = accept_op("(");
    std::vector<std::string> names;
    do {
      if (cur().t != T::Name) error(cur().line, "expected a variable name");
      names.push_back(take().s);
    } while (accept_op(","));
    if (paren) expect_op(")");
    return names;
  }

  // --- token helpers

  const Tok& cur() const { return toks_[pos_]; }
  const Tok& take() { return toks_[pos_ < toks_.size() - 1 ? pos_++ : pos_]; }
  bool is_op(const char* op) const { return cur().t == T::Op && cur().s == op; }
  bool is_name(const char* name) const { return cur().t == T::Name && cur().s == name; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    ++pos_;
    return true;
  }
  bool accept_name(const char* name) {
    if (!is_name(name)) return false;
    ++pos_;
    return true;
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) error(cur().line, fmt::format("expected '{}', got {}", op, describe()));
  }
  void expect_end(const char* close) {
    if (cur().t != T::End) {
      error(cur().line, fmt::format("expected '{}', got {}", close, describe()));
    }
  }
  std::string describe() const {
    switch (cur().t) {
      case T::End:
        return "the end of the tag";
      case T::Str:
        return "a string";
      default:
        return "'" + cur().s + "'";
    }
  }

  ExprP make(E e, int line, std::vector<ExprP> args = {}) {
    auto x = std::make_unique<Expr>();
    x->e = e;
    x->line = line;
    x->args = std::move(args);
    for (const ExprP& arg : x->args) deepen(*x, arg.get());
    return x;
  }
  // The tree depth bounds the recursion of evaluating (and freeing) it; operator chains such
  // as a ~ b ~ c ~ ... nest to the left without recursing in the parser.
  void deepen(Expr& x, const Expr* arg) const {
    if (!arg) return;
    x.depth = std::max(x.depth, arg->depth + 1);
    if (x.depth > kMaxDepth) too_deep(where_, x.line);
  }
  void add_arg(Expr& x, ExprP arg) {
    deepen(x, arg.get());
    x.args.push_back(std::move(arg));
  }
  ExprP literal(Value v, int line) {
    auto x = make(E::Lit, line);
    x->lit = std::move(v);
    return x;
  }
  ExprP binary(E e, const std::string& op, ExprP l, ExprP r) {
    int line = l->line;
    std::vector<ExprP> args;
    args.push_back(std::move(l));
    args.push_back(std::move(r));
    auto x = make(e, line, std::move(args));
    x->name = op;
    return x;
  }

  // --- expressions, by jinja2's precedence

  // expr, expr, ...: a tuple (set's right-hand side).
  ExprP parse_tuple() {
    int line = cur().line;
    ExprP first = parse_expr();
    if (!is_op(",")) return first;
    std::vector<ExprP> items;
    items.push_back(std::move(first));
    while (accept_op(",")) {
      if (cur().t == T::End) break;
      items.push_back(parse_expr());
    }
    return make(E::TupleLit, line, std::move(items));
  }

  ExprP parse_expr() {
    Nest nest(*this, cur().line);
    ExprP x = parse_or();
    while (accept_name("if")) {
      ExprP cond = parse_or();
      ExprP other = accept_name("else") ? parse_expr() : nullptr;
      int line = x->line;
      std::vector<ExprP> args;
      args.push_back(std::move(x));
      args.push_back(std::move(cond));
      args.push_back(std::move(other));
      x = make(E::Cond, line, std::move(args));
    }
    return x;
  }

  ExprP parse_or() {
    ExprP x = parse_and();
    while (accept_name("or")) x = binary(E::Or, "or", std::move(x), parse_and());
    return x;
  }

  ExprP parse_and() {
    ExprP x = parse_not();
    while (accept_name("and")) x = binary(E::And, "and", std::move(x), parse_not());
    return x;
  }

  ExprP parse_not() {
    int line = cur().line;
    if (accept_name("not")) {
      Nest nest(*this, line);
      std::vector<ExprP> args;
      args.push_back(parse_not());
      return make(E::Not, line, std::move(args));
    }
    return parse_compare();
  }

  ExprP parse_compare() {
    ExprP x = parse_math1();
    std::vector<ExprP> operands;
    std::vector<std::string> ops;
    while (true) {
      std::string op;
      if (cur().t == T::Op && (cur().s == "==" || cur().s == "!=" || cur().s == "<" ||
                               cur().s == "<=" || cur().s == ">" || cur().s == ">=")) {
        op = take().s;
      } else if (accept_name("in")) {
        op = "in";
      } else if (is_name("not") && toks_[pos_ + 1].t == T::Name && toks_[pos_ + 1].s == "in") {
        pos_ += 2;
        op = "notin";
      } else {
        break;
      }
      if (operands.empty()) operands.push_back(std::move(x));
      operands.push_back(parse_math1());
      ops.push_back(op);
    }
    if (operands.empty()) return x;
    int line = operands[0]->line;
    auto c = make(E::Cmp, line, std::move(operands));
    c->ops = std::move(ops);
    return c;
  }

  ExprP parse_math1() {
    ExprP x = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = take().s;
      x = binary(E::Bin, op, std::move(x), parse_concat());
    }
    return x;
  }

  ExprP parse_concat() {
    ExprP x = parse_math2();
    while (accept_op("~")) x = binary(E::Bin, "~", std::move(x), parse_math2());
    return x;
  }

  ExprP parse_math2() {
    ExprP x = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = take().s;
      x = binary(E::Bin, op, std::move(x), parse_pow());
    }
    return x;
  }

  ExprP parse_pow() {
    ExprP x = parse_unary(true);
    while (accept_op("**")) x = binary(E::Bin, "**", std::move(x), parse_unary(true));
    return x;
  }

  ExprP parse_unary(bool with_filter) {
    int line = cur().line;
    ExprP x;
    if (is_op("-") || is_op("+")) {
      E e = take().s == "-" ? E::Neg : E::Pos;
      Nest nest(*this, line);
      std::vector<ExprP> args;
      args.push_back(parse_unary(false));
      x = make(e, line, std::move(args));
    } else {
      x = parse_primary();
    }
    x = parse_postfix(std::move(x));
    return with_filter ? parse_filters(std::move(x)) : std::move(x);
  }

  ExprP parse_primary() {
    const Tok& t = cur();
    int line = t.line;
    switch (t.t) {
      case T::Name: {
        std::string name = take().s;
        if (name == "true" || name == "True") return literal(Value::boolean(true), line);
        if (name == "false" || name == "False") return literal(Value::boolean(false), line);
        if (name == "none" || name == "None") return literal(Value::none(), line);
        auto x = make(E::Name, line);
        x->name = name;
        return x;
      }
      case T::Str: {
        std::string s;
        while (cur().t == T::Str) s += take().s;
        return literal(Value::str(std::move(s)), line);
      }
      case T::Int:
        return literal(Value::integer(take().i), line);
      case T::Float:
        return literal(Value::real(take().f), line);
      case T::Op:
        if (accept_op("(")) return parse_paren(line);
        if (accept_op("[")) return parse_list(line);
        if (accept_op("{")) return parse_dict(line);
        break;
      case T::End:
        break;
    }
    error(line, fmt::format("expected an expression, got {}", describe()));
  }

  ExprP parse_paren(int line) {
    if (accept_op(")")) return make(E::TupleLit, line);
    ExprP x = parse_expr();
    if (accept_op(")")) return x;
    std::vector<ExprP> items;
    items.push_back(std::move(x));
    while (accept_op(",")) {
      if (is_op(")")) break;
      items.push_back(parse_expr());
    }
    expect_op(")");
    return make(E::TupleLit, line, std::move(items));
  }

  ExprP parse_list(int line) {
    std::vector<ExprP> items;
    while (!is_op("]")) {
      items.push_back(parse_expr());
      if (!accept_op(",")) break;
    }
    expect_op("]");
    return make(E::ListLit, line, std::move(items));
  }

  ExprP parse_dict(int line) {
    std::vector<ExprP> items;
    while (!is_op("}")) {
      items.push_back(parse_expr());
      expect_op(":");
      items.push_back(parse_expr());
      if (!accept_op(",")) break;
    }
    expect_op("}");
    return make(E::DictLit, line, std::move(items));
  }

  ExprP parse_postfix(ExprP x) {
    while (true) {
      int line = cur().line;
      if (accept_op(".")) {
        if (cur().t == T::Int) {
          std::vector<ExprP> args;
          args.push_back(std::move(x));
          args.push_back(literal(Value::integer(take().i), line));
          x = make(E::Item, line, std::move(args));
          continue;
        }
        if (cur().t != T::Name) error(line, "expected an attribute name after '.'");
        std::vector<ExprP> args;
        args.push_back(std::move(x));
        x = make(E::Attr, line, std::move(args));
        x->name = take().s;
      } else if (accept_op("[")) {
        x = parse_subscript(std::move(x), line);
      } else if (accept_op("(")) {
        std::vector<ExprP> args;
        args.push_back(std::move(x));
        x = make(E::Call, line, std::move(args));
        parse_call_args(*x);
      } else {
        return x;
      }
    }
  }

  ExprP parse_subscript(ExprP obj, int line) {
    std::vector<ExprP> args;
    args.push_back(std::move(obj));
    if (!is_op(":")) {
      args.push_back(parse_expr());
      if (accept_op("]")) return make(E::Item, line, std::move(args));
    } else {
      args.push_back(nullptr);
    }
    expect_op(":");
    args.push_back(is_op("]") || is_op(":") ? nullptr : parse_expr());
    args.push_back(accept_op(":") && !is_op("]") ? parse_expr() : nullptr);
    expect_op("]");
    return make(E::Slice, line, std::move(args));
  }

  // After '(' : positional and name=value arguments up to ')'.
  void parse_call_args(Expr& x) {
    while (!is_op(")")) {
      if (cur().t == T::Name && toks_[pos_ + 1].t == T::Op && toks_[pos_ + 1].s == "=") {
        std::string name = take().s;
        take();
        ExprP value = parse_expr();
        deepen(x, value.get());
        x.kwargs.emplace_back(name, std::move(value));
      } else {
        if (!x.kwargs.empty()) error(cur().line, "positional argument after keyword argument");
        add_arg(x, parse_expr());
      }
      if (!accept_op(",")) break;
    }
    expect_op(")");
  }

  ExprP parse_filters(ExprP x) {
    while (true) {
      int line = cur().line;
      if (accept_op("|")) {
        if (cur().t != T::Name) error(line, "expected a filter name after '|'");
        std::string name = take().s;
        if (!kFilters.count(name)) {
          error(line,
                fmt::format("unknown filter '{}' (outside the supported Jinja subset)", name));
        }
        std::vector<ExprP> args;
        args.push_back(std::move(x));
        x = make(E::Filter, line, std::move(args));
        x->name = name;
        if (accept_op("(")) parse_call_args(*x);
      } else if (accept_name("is")) {
        x = parse_test(std::move(x), line);
      } else {
        return x;
      }
    }
  }

  ExprP parse_test(ExprP value, int line) {
    bool negate = accept_name("not");
    if (cur().t != T::Name) error(line, "expected a test name after 'is'");
    std::string name = take().s;
    if (!kTests.count(name)) {
      error(line, fmt::format("unknown test '{}' (outside the supported Jinja subset)", name));
    }
    std::vector<ExprP> args;
    args.push_back(std::move(value));
    auto x = make(E::Test, line, std::move(args));
    x->name = name;
    x->negate = negate;
    if (accept_op("(")) {
      parse_call_args(*x);
    } else if ((cur().t == T::Str || cur().t == T::Int || cur().t == T::Float ||
                (cur().t == T::Name && !is_name("else") && !is_name("or") && !is_name("and")) ||
                is_op("[") || is_op("{")) &&
               !is_name("is")) {
      add_arg(*x, parse_postfix(parse_primary()));
    }
    return x;
  }
};

// ---------------------------------------------------------------------------------------------
// Python operations on values

std::string ascii_case(std::string s, bool upper) {
  for (char& c : s) {
    c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c))
                                : std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

// Steps to look a key up in a dict of n items (a linear scan, so that order is kept).
int64_t lookup_steps(size_t n) { return 1 + static_cast<int64_t>(n / 16); }

/// Python's ==. Lists may share items, so each comparison costs a step.
bool equal(const Value& a, const Value& b, Budget& budget) {
  budget.step();
  if (a.numeric() && b.numeric()) {
    if (a.is(K::Float) || b.is(K::Float)) return a.num() == b.num();
    return a.as_int() == b.as_int();
  }
  if (a.k != b.k) return false;
  switch (a.k) {
    case K::Undef:
    case K::None:
      return true;
    case K::Str:
      budget.bytes(a.s.size());
      return a.s == b.s;
    case K::List:
      if (a.tuple != b.tuple || a.list->size() != b.list->size()) return false;
      if (a.list == b.list) return true;  // as Python, which compares items by identity first
      for (size_t n = 0; n < a.list->size(); ++n) {
        if (!equal((*a.list)[n], (*b.list)[n], budget)) return false;
      }
      return true;
    case K::Dict:
      if (a.dict->size() != b.dict->size()) return false;
      if (a.dict == b.dict) return true;
      for (const auto& [key, v] : *a.dict) {
        budget.step(lookup_steps(b.dict->size()));
        const Value* other = b.find(key);
        if (!other || !equal(v, *other, budget)) return false;
      }
      return true;
    default:
      return a.dict == b.dict;
  }
}

/// A slice resolved against a length, as Python's slice.indices(len): count indices from
/// start, step apart.
struct SliceSpec {
  int64_t start = 0;
  int64_t step = 1;
  int64_t count = 0;
};

// start, stop and step may be absent (null); step is not 0.
SliceSpec slice_spec(int64_t len, const Value* start, const Value* stop, const Value* step) {
  SliceSpec sl;
  sl.step = step ? step->as_int() : 1;
  auto clamp = [&](const Value* v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = v->as_int();
    if (x < 0) x += len;  // no overflow: len >= 0
    if (sl.step > 0) return std::clamp<int64_t>(x, 0, len);
    return std::clamp<int64_t>(x, -1, len - 1);
  };
  sl.start = clamp(start, sl.step > 0 ? 0 : len - 1);
  int64_t stop_at = clamp(stop, sl.step > 0 ? len : -1);
  // The span is at most len + 1 and the step's magnitude is computed unsigned, so neither
  // overflows (a step may be INT64_MIN); the k-th index, start + k * step, lies in the span.
  uint64_t span = sl.step > 0 ? static_cast<uint64_t>(std::max<int64_t>(stop_at - sl.start, 0))
                              : static_cast<uint64_t>(std::max<int64_t>(sl.start - stop_at, 0));
  uint64_t magnitude =
      sl.step > 0 ? static_cast<uint64_t>(sl.step) : static_cast<uint64_t>(-(sl.step + 1)) + 1;
  sl.count = span == 0 ? 0 : static_cast<int64_t>(1 + (span - 1) / magnitude);
  return sl;
}

// ---------------------------------------------------------------------------------------------
// Renderer

/// One render: the context, the frames of {% set %} variables (one per loop iteration), the
/// output, the line being evaluated for error messages, and the budget of work.
class Renderer {
 public:
  Renderer(const std::string& where, Dict context, const RenderLimits& limits)
      : where_(where), ctx_(std::move(context)), budget_(where_, line_, limits) {
    frames_.emplace_back();
  }

  // Namespaces are the only mutable values, so the only ones that can hold themselves
  // ({% set ns.me = ns %}) or form long chains ({% set ns.prev = namespace(prev=ns.prev) %} in a
  // loop): emptying each, the cycles are broken and nothing is freed by a deep recursion.
  ~Renderer() {
    for (const auto& d : namespaces_) d->clear();
  }
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  std::string out;

  void exec(const std::vector<Node>& nodes) {
    for (const Node& n : nodes) exec(n);
  }

 private:
  const std::string& where_;
  Dict ctx_;
  std::vector<std::unordered_map<std::string, Value>> frames_;
  std::vector<std::shared_ptr<Dict>> namespaces_;
  int line_ = 0;
  Budget budget_;

  [[noreturn]] void error(const std::string& msg) const {
    fail("{} line {}: {}", where_, line_, msg);
  }
  void check_defined(const Value& v) const {
    if (v.is(K::Undef)) error(v.s);
  }
  std::string str(const Value& v) { return to_str(v, budget_); }

  // --- statements

  void exec(const Node& n) {
    line_ = n.line;
    budget_.step();
    switch (n.n) {
      case N::Text:
        budget_.bytes(n.text.size());
        out += n.text;
        break;
      case N::Out:
        out += str(eval(*n.expr));
        break;
      case N::If:
        for (const Branch& b : n.branches) {
          if (!b.cond || truthy(eval(*b.cond))) {
            exec(b.body);
            break;
          }
        }
        break;
      case N::For:
        exec_for(n);
        break;
      case N::Set:
        exec_set(n);
        break;
    }
    budget_.check_output(out.size());
  }

  void exec_for(const Node& n) {
    List items = iterate(eval(*n.expr));
    if (n.cond) {
      List kept;
      for (const Value& item : items) {
        budget_.step(kLoopSteps);
        frames_.emplace_back();
        bind(n.targets, item);
        if (truthy(eval(*n.cond))) kept.push_back(item);
        frames_.pop_back();
      }
      items = std::move(kept);
    }
    int64_t len = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < len; ++k) {
      line_ = n.line;
      // the frame, the loop variable, and the item copied as itself, previtem and nextitem
      budget_.step(kLoopSteps);
      budget_.bytes(3 * items[static_cast<size_t>(k)].s.size());
      frames_.emplace_back();
      bind(n.targets, items[static_cast<size_t>(k)]);
      frames_.back()["loop"] = loop_info(items, k);
      exec(n.body);
      frames_.pop_back();
    }
    if (items.empty()) exec(n.orelse);
  }

  static Value loop_info(const List& items, int64_t k) {
    int64_t len = static_cast<int64_t>(items.size());
    auto at = [&](int64_t j) {
      return j >= 0 && j < len ? items[static_cast<size_t>(j)] : Value::undef("no such item");
    };
    return Value::dict_of({{"index", Value::integer(k + 1)},
                           {"index0", Value::integer(k)},
                           {"revindex", Value::integer(len - k)},
                           {"revindex0", Value::integer(len - k - 1)},
                           {"first", Value::boolean(k == 0)},
                           {"last", Value::boolean(k == len - 1)},
                           {"length", Value::integer(len)},
                           {"previtem", at(k - 1)},
                           {"nextitem", at(k + 1)}});
  }

  void bind(const std::vector<std::string>& names, const Value& v) {
    if (names.size() == 1) {
      frames_.back()[names[0]] = v;
      return;
    }
    List parts = iterate(v);
    if (parts.size() != names.size()) {
      error(fmt::format("cannot unpack {} values into {} names", parts.size(), names.size()));
    }
    for (size_t k = 0; k < names.size(); ++k) frames_.back()[names[k]] = parts[k];
  }

  void exec_set(const Node& n) {
    Value v = eval(*n.expr);
    if (n.attr.empty()) return bind(n.targets, v);
    Value ns = lookup(n.targets[0]);
    if (!ns.is(K::Ns))
      error(fmt::format("cannot set '{}.{}': '{}' is not a namespace", n.targets[0], n.attr,
                        n.targets[0]));
    for (auto& [key, item] : *ns.dict) {
      if (key == n.attr) {
        item = std::move(v);
        return;
      }
    }
    ns.dict->emplace_back(n.attr, std::move(v));
  }

  // Looks through one frame per enclosing loop (up to kMaxDepth), then the context.
  Value lookup(const std::string& name) {
    budget_.step(static_cast<int64_t>((frames_.size() + ctx_.size()) / 8));
    for (auto f = frames_.rbegin(); f != frames_.rend(); ++f) {
      if (auto it = f->find(name); it != f->end()) return it->second;
    }
    for (const auto& [key, v] : ctx_) {
      if (key == name) return v;
    }
    return Value::undef(fmt::format("'{}' is undefined", name));
  }

  List iterate(const Value& v) {
    switch (v.k) {
      case K::Undef:
        return {};
      case K::List:
        budget_.copy(*v.list);
        return *v.list;
      case K::Dict: {
        budget_.items(v.dict->size());
        List keys;
        keys.reserve(v.dict->size());
        for (const auto& [key, item] : *v.dict) {
          budget_.bytes(key.size());
          keys.push_back(Value::str(key));
        }
        return keys;
      }
      case K::Str: {
        budget_.items(cp_count(v.s));
        List chars;
        for (size_t n = 0; n < v.s.size(); n = cp_next(v.s, n)) {
          chars.push_back(Value::str(cp_at(v.s, n)));
        }
        return chars;
      }
      default:
        error(fmt::format("'{}' object is not iterable", type_name(v)));
    }
  }

  // --- expressions

  // Every value an expression gives is counted (with the bytes of its string, copied when
  // passed on) and checked: strings at most max_bytes, nesting at most kMaxDepth.
  Value eval(const Expr& e) {
    budget_.step();
    line_ = e.line;
    Value v = eval_node(e);
    line_ = e.line;
    budget_.bytes(v.s.size());
    budget_.check_string(v.s.size());
    budget_.check_depth(v);
    return v;
  }

  Value eval_node(const Expr& e) {
    switch (e.e) {
      case E::Lit:
        return e.lit;
      case E::Name:
        return lookup(e.name);
      case E::Attr:
        return get_attr(eval(*e.args[0]), e.name);
      case E::Item: {
        Value obj = eval(*e.args[0]);
        Value key = eval(*e.args[1]);
        line_ = e.line;
        return get_item(obj, key);
      }
      case E::Slice:
        return eval_slice(e);
      case E::Call:
        return eval_call(e);
      case E::Filter:
        return eval_filter(e);
      case E::Test:
        return Value::boolean(eval_test(e) != e.negate);
      case E::Neg:
      case E::Pos:
        return eval_sign(e);
      case E::Not:
        return Value::boolean(!truthy(eval(*e.args[0])));
      case E::Bin: {
        Value a = eval(*e.args[0]);
        Value b = eval(*e.args[1]);
        line_ = e.line;
        return binop(e.name, a, b);
      }
      case E::Cmp:
        return eval_compare(e);
      case E::And: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? eval(*e.args[1]) : a;
      }
      case E::Or: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? a : eval(*e.args[1]);
      }
      case E::Cond:
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        if (e.args[2]) return eval(*e.args[2]);
        return Value::undef("the inline if-expression evaluated to false and has no else");
      case E::ListLit:
      case E::TupleLit: {
        List items;
        items.reserve(e.args.size());
        for (const auto& x : e.args) items.push_back(eval(*x));
        return Value::list_of(std::move(items), e.e == E::TupleLit);
      }
      case E::DictLit:
        return eval_dict(e);
    }
    return Value::none();
  }

  Value eval_dict(const Expr& e) {
    Dict d;
    for (size_t k = 0; k < e.args.size(); k += 2) {
      Value key = eval(*e.args[k]);
      if (!key.is(K::Str)) error("dict literal keys must be strings in the supported Jinja subset");
      Value v = eval(*e.args[k + 1]);
      budget_.step(lookup_steps(d.size()));
      auto it = std::find_if(d.begin(), d.end(), [&](const auto& p) { return p.first == key.s; });
      if (it != d.end()) {
        it->second = std::move(v);
      } else {
        d.emplace_back(key.s, std::move(v));
      }
    }
    return Value::dict_of(std::move(d));
  }

  Value eval_sign(const Expr& e) {
    Value v = eval(*e.args[0]);
    line_ = e.line;
    check_defined(v);
    if (!v.numeric()) {
      error(fmt::format("bad operand type for unary {}: '{}'", e.e == E::Neg ? '-' : '+',
                        type_name(v)));
    }
    if (e.e == E::Pos) return v.is(K::Bool) ? Value::integer(v.as_int()) : v;
    return v.is(K::Float) ? Value::real(-v.f) : int_op("-", 0, v.as_int());
  }

  Value get_attr(const Value& obj, const std::string& name) {
    check_defined(obj);
    if (obj.is(K::Dict) || obj.is(K::Ns)) {
      budget_.step(lookup_steps(obj.dict->size()));
      if (const Value* v = obj.find(name)) return *v;
    }
    return Value::undef(fmt::format("'{} object' has no attribute '{}'", type_name(obj), name));
  }

  Value get_item(const Value& obj, const Value& key) {
    check_defined(obj);
    if (key.is(K::Str)) return get_attr(obj, key.s);
    if ((obj.is(K::List) || obj.is(K::Str)) && (key.is(K::Int) || key.is(K::Bool))) {
      int64_t len = static_cast<int64_t>(obj.is(K::Str) ? cp_count(obj.s) : obj.list->size());
      int64_t k = key.as_int() < 0 ? key.as_int() + len : key.as_int();
      if (k >= 0 && k < len) {
        if (obj.is(K::Str)) return Value::str(cp_at(obj.s, cp_offset(obj.s, k)));
        return (*obj.list)[static_cast<size_t>(k)];
      }
    }
    return Value::undef(fmt::format("'{} object' has no element {}", type_name(obj), str(key)));
  }

  Value eval_slice(const Expr& e) {
    Value obj = eval(*e.args[0]);
    Value parts[3];
    const Value* ptrs[3] = {nullptr, nullptr, nullptr};
    for (int k = 0; k < 3; ++k) {
      if (!e.args[static_cast<size_t>(k) + 1]) continue;
      parts[k] = eval(*e.args[static_cast<size_t>(k) + 1]);
      if (parts[k].is(K::None)) continue;
      line_ = e.line;
      if (!parts[k].is(K::Int) && !parts[k].is(K::Bool)) error("slice indices must be integers");
      ptrs[k] = &parts[k];
    }
    line_ = e.line;
    check_defined(obj);
    if (ptrs[2] && ptrs[2]->as_int() == 0) error("slice step cannot be zero");
    if (obj.is(K::Str)) {
      return Value::str(slice_str(
          obj.s, slice_spec(static_cast<int64_t>(cp_count(obj.s)), ptrs[0], ptrs[1], ptrs[2])));
    }
    if (!obj.is(K::List)) error(fmt::format("'{}' object is not subscriptable", type_name(obj)));
    SliceSpec sl = slice_spec(static_cast<int64_t>(obj.list->size()), ptrs[0], ptrs[1], ptrs[2]);
    budget_.items(static_cast<size_t>(sl.count));
    List out;
    out.reserve(static_cast<size_t>(sl.count));
    for (int64_t k = 0; k < sl.count; ++k) {
      const Value& item = (*obj.list)[static_cast<size_t>(sl.start + k * sl.step)];
      budget_.bytes(item.s.size());
      out.push_back(item);
    }
    return Value::list_of(std::move(out), obj.tuple);
  }

  // The code points of s that sl selects (walked in place, in either direction).
  static std::string slice_str(const std::string& s, const SliceSpec& sl) {
    std::string out;
    if (sl.count == 0) return out;
    size_t n = 0;
    if (sl.step > 0) {
      n = cp_offset(s, sl.start);
    } else {
      n = cp_prev(s, s.size());  // the last code point, index len - 1
      for (int64_t k = static_cast<int64_t>(cp_count(s)) - 1; k > sl.start; --k) {
        n = cp_prev(s, n);
      }
    }
    for (int64_t k = 0; k < sl.count; ++k) {
      if (k > 0 && sl.step > 0) {
        for (int64_t j = 0; j < sl.step; ++j) n = cp_next(s, n);
      } else if (k > 0) {
        for (int64_t j = 0; j > sl.step; --j) n = cp_prev(s, n);
      }
      out.append(s, n, cp_next(s, n) - n);
    }
    return out;
  }

  Value eval_compare(const Expr& e) {
    Value a = eval(*e.args[0]);
    for (size_t k = 0; k < e.ops.size(); ++k) {
      Value b = eval(*e.args[k + 1]);
      line_ = e.line;
      if (!compare(e.ops[k], a, b)) return Value::boolean(false);
      a = std::move(b);
    }
    return Value::boolean(true);
  }

  bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equal(a, b, budget_);
    if (op == "!=") return !equal(a, b, budget_);
    if (op == "in") return contains(b, a);
    if (op == "notin") return !contains(b, a);
    int c = order(op, a, b);
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
  }

  // -1, 0 or 1, as Python orders numbers, strings and lists.
  int order(const std::string& op, const Value& a, const Value& b) {
    budget_.step();
    check_defined(a);
    check_defined(b);
    if (a.numeric() && b.numeric()) return a.num() < b.num() ? -1 : a.num() > b.num() ? 1 : 0;
    if (a.is(K::Str) && b.is(K::Str)) return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
    if (a.is(K::List) && b.is(K::List)) {
      for (size_t k = 0; k < a.list->size() && k < b.list->size(); ++k) {
        if (!equal((*a.list)[k], (*b.list)[k], budget_)) {
          return order(op, (*a.list)[k], (*b.list)[k]);
        }
      }
      return a.list->size() < b.list->size() ? -1 : a.list->size() > b.list->size() ? 1 : 0;
    }
    error(fmt::format("'{}' not supported between instances of '{}' and '{}'", op, type_name(a),
                      type_name(b)));
  }

  bool contains(const Value& container, const Value& item) {
    switch (container.k) {
      case K::Undef:
        return false;
      case K::Str:
        if (!item.is(K::Str)) {
          error(fmt::format("'in <string>' requires string as left operand, not {}",
                            type_name(item)));
        }
        return Finder(item.s).find(container.s, 0) != std::string::npos;
      case K::List:
        return std::any_of(container.list->begin(), container.list->end(),
                           [&](const Value& x) { return equal(x, item, budget_); });
      case K::Dict:
        budget_.step(lookup_steps(container.dict->size()));
        return item.is(K::Str) && container.find(item.s) != nullptr;
      default:
        error(fmt::format("argument of type '{}' is not iterable", type_name(container)));
    }
  }

  Value binop(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") {
      std::string left = str(a), right = str(b);
      budget_.check_string(left.size() + right.size());
      return Value::str(left + right);
    }
    check_defined(a);
    check_defined(b);
    if (op == "+" && a.is(K::Str) && b.is(K::Str)) {
      budget_.check_string(a.s.size() + b.s.size());
      return Value::str(a.s + b.s);
    }
    if (op == "+" && a.is(K::List) && b.is(K::List) && a.tuple == b.tuple) {
      budget_.check_items(a.list->size() + b.list->size());
      budget_.copy(*a.list);
      budget_.copy(*b.list);
      List l;
      l.reserve(a.list->size() + b.list->size());
      l.insert(l.end(), a.list->begin(), a.list->end());
      l.insert(l.end(), b.list->begin(), b.list->end());
      return Value::list_of(std::move(l), a.tuple);
    }
    if (op == "*" && (a.is(K::Str) || a.is(K::List)) && (b.is(K::Int) || b.is(K::Bool))) {
      return repeat(a, b.as_int());
    }
    if (op == "*" && (b.is(K::Str) || b.is(K::List)) && (a.is(K::Int) || a.is(K::Bool))) {
      return repeat(b, a.as_int());
    }
    if (!a.numeric() || !b.numeric()) {
      error(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a),
                        type_name(b)));
    }
    if (a.is(K::Float) || b.is(K::Float) || op == "/") return float_op(op, a.num(), b.num());
    return int_op(op, a.as_int(), b.as_int());
  }

  // seq * times: the size is checked before anything is built ('a' * 10**9 fails at once).
  Value repeat(const Value& seq, int64_t times) {
    uint64_t n = times > 0 ? static_cast<uint64_t>(times) : 0;
    if (seq.is(K::Str)) {
      size_t size = saturating_mul(seq.s.size(), n);
      budget_.check_string(size);
      budget_.bytes(size);
      std::string out;
      if (size == 0) return Value::str(std::move(out));
      out.reserve(size);
      out = seq.s;
      while (out.size() <= size / 2) out.append(out.data(), out.size());  // no reallocation
      out.append(out.data(), size - out.size());
      return Value::str(std::move(out));
    }
    size_t count = saturating_mul(seq.list->size(), n);
    budget_.items(count);
    List out;
    out.reserve(count);
    for (uint64_t k = 0; k < n && !seq.list->empty(); ++k) {
      budget_.copy(*seq.list);
      out.insert(out.end(), seq.list->begin(), seq.list->end());
    }
    return Value::list_of(std::move(out), seq.tuple);
  }

  // Python ints are unbounded; here a result outside int64 is an error, not a wrap.
  int64_t checked(const std::string& op, int64_t a, int64_t b) const {
    int64_t r = 0;
    bool overflow = op == "+"   ? __builtin_add_overflow(a, b, &r)
                    : op == "-" ? __builtin_sub_overflow(a, b, &r)
                                : __builtin_mul_overflow(a, b, &r);
    if (overflow) error("integer overflow (integers are 64-bit in the supported Jinja subset)");
    return r;
  }

  int64_t int_pow(int64_t a, int64_t b) const {
    int64_t r = 1;
    for (; b > 0; b >>= 1) {
      if (b & 1) r = checked("*", r, a);
      if (b > 1) a = checked("*", a, a);
    }
    return r;
  }

  Value int_op(const std::string& op, int64_t a, int64_t b) const {
    if (op == "+" || op == "-" || op == "*") return Value::integer(checked(op, a, b));
    if (op == "**") {
      if (b < 0) return Value::real(std::pow(static_cast<double>(a), static_cast<double>(b)));
      return Value::integer(int_pow(a, b));
    }
    if (b == 0) error("integer division or modulo by zero");
    if (b == -1) return Value::integer(op == "//" ? checked("-", 0, a) : 0);
    int64_t q = a / b, r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) {
      --q;
      r += b;
    }
    return Value::integer(op == "//" ? q : r);
  }

  Value float_op(const std::string& op, double a, double b) const {
    if (op == "+") return Value::real(a + b);
    if (op == "-") return Value::real(a - b);
    if (op == "*") return Value::real(a * b);
    if (op == "**") return Value::real(std::pow(a, b));
    if (b == 0) error("float division by zero");
    if (op == "/") return Value::real(a / b);
    double r = std::fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    if (op == "%") return Value::real(r);
    return Value::real(std::floor((a - r) / b + 0.5));
  }

  // --- calls: globals, string and dict methods

  struct Args {
    List pos;
    std::vector<std::pair<std::string, Value>> kw;
  };

  Args eval_args(const Expr& e) {
    Args a;
    for (size_t k = 1; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k]));
    for (const auto& [name, x] : e.kwargs) a.kw.emplace_back(name, eval(*x));
    line_ = e.line;
    return a;
  }

  // The k-th parameter, given by position or by name; null when absent.
  const Value* param(const Args& a, size_t k, const char* name) const {
    for (const auto& [key, v] : a.kw) {
      if (key == name) return &v;
    }
    return k < a.pos.size() ? &a.pos[k] : nullptr;
  }

  void check_arity(const Args& a, size_t max, const std::string& what) const {
    if (a.pos.size() > max) {
      error(fmt::format("{} takes at most {} arguments ({} given)", what, max, a.pos.size()));
    }
  }

  Value eval_call(const Expr& e) {
    const Expr& callee = *e.args[0];
    if (callee.e == E::Attr) {
      Value obj = eval(*callee.args[0]);
      Args a = eval_args(e);
      return call_method(obj, callee.name, a);
    }
    Args a = eval_args(e);
    if (callee.e == E::Name) {
      if (callee.name == "raise_exception") {
        const Value* msg = param(a, 0, "message");
        error(msg ? str(*msg) : std::string("raise_exception called"));
      }
      if (callee.name == "range") return call_range(a);
      if (callee.name == "namespace") return call_namespace(a);
      error(fmt::format("'{}' is not a function of the supported Jinja subset", callee.name));
    }
    error("only raise_exception, range, namespace and methods can be called");
  }

  Value call_range(const Args& a) {
    check_arity(a, 3, "range");
    for (const Value& v : a.pos) {
      if (!v.is(K::Int) && !v.is(K::Bool)) error("range() arguments must be integers");
    }
    if (a.pos.empty()) error("range expected at least 1 argument, got 0");
    int64_t start = a.pos.size() > 1 ? a.pos[0].as_int() : 0;
    int64_t stop = a.pos.size() > 1 ? a.pos[1].as_int() : a.pos[0].as_int();
    int64_t step = a.pos.size() > 2 ? a.pos[2].as_int() : 1;
    if (step == 0) error("range() arg 3 must not be zero");
    List out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop;) {
      // jinja2's sandbox refuses ranges longer than MAX_RANGE (100000).
      if (out.size() == 100000) error("range too big (the sandbox allows at most 100000 items)");
      out.push_back(Value::integer(k));
      if (__builtin_add_overflow(k, step, &k)) break;
    }
    budget_.items(out.size());
    return Value::list_of(std::move(out));
  }

  Value call_namespace(const Args& a) {
    Dict d;
    for (const Value& v : a.pos) {
      if (!v.is(K::Dict)) error("namespace() takes only a dict positionally");
      d.insert(d.end(), v.dict->begin(), v.dict->end());
    }
    d.insert(d.end(), a.kw.begin(), a.kw.end());
    // Each namespace is kept to the end of the render (see ~Renderer): it costs as much as a
    // loop of a few iterations, so that they cannot fill the memory.
    budget_.step(10 * kLoopSteps);
    budget_.items(d.size());
    Value ns = Value::dict_of(std::move(d), K::Ns);
    namespaces_.push_back(ns.dict);
    return ns;
  }

  Value call_method(const Value& obj, const std::string& name, const Args& a) {
    check_defined(obj);
    if (obj.is(K::Str)) return str_method(obj.s, name, a);
    if (obj.is(K::Dict)) return dict_method(obj, name, a);
    error(fmt::format("'{}' object has no method '{}' in the supported Jinja subset",
                      type_name(obj), name));
  }

  const std::string* str_param(const Args& a, size_t k, const char* name,
                               const std::string& what) const {
    const Value* v = param(a, k, name);
    if (!v || v->is(K::None)) return nullptr;
    if (!v->is(K::Str)) error(fmt::format("{}: argument must be str, not {}", what, type_name(*v)));
    return &v->s;
  }

  Value str_method(const std::string& s, const std::string& name, const Args& a) {
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      check_arity(a, 1, name);
      const std::string* chars = str_param(a, 0, "chars", name);
      return Value::str(strip(s, name != "rstrip", name != "lstrip", chars));
    }
    if (name == "upper" || name == "lower") return Value::str(ascii_case(s, name == "upper"));
    if (name == "startswith" || name == "endswith") return Value::boolean(affix(s, name, a));
    if (name == "split") return split(s, a);
    if (name == "replace") return replace(s, a);
    if (name == "capitalize") return Value::str(capitalize(s));
    if (name == "join") {
      const Value* items = param(a, 0, "iterable");
      if (!items) error("join() takes exactly one argument");
      std::string out;
      List parts = iterate(*items);
      for (size_t k = 0; k < parts.size(); ++k) {
        if (!parts[k].is(K::Str)) error("join(): sequence items must be str");
        if (k) out += s;
        out += parts[k].s;
        budget_.check_string(out.size());
      }
      return Value::str(std::move(out));
    }
    error(fmt::format("'str' object has no method '{}' in the supported Jinja subset", name));
  }

  bool affix(const std::string& s, const std::string& name, const Args& a) {
    const Value* v = param(a, 0, "prefix");
    if (!v) error(fmt::format("{}() takes at least 1 argument", name));
    const List* options = v->is(K::List) && v->tuple ? v->list.get() : nullptr;
    size_t count = options ? options->size() : 1;
    for (size_t k = 0; k < count; ++k) {
      const Value& o = options ? (*options)[k] : *v;
      budget_.step();
      if (!o.is(K::Str)) error(fmt::format("{}: argument must be str or a tuple of str", name));
      bool hit = name == "startswith" ? s.compare(0, o.s.size(), o.s) == 0
                                      : s.size() >= o.s.size() &&
                                            s.compare(s.size() - o.s.size(), o.s.size(), o.s) == 0;
      if (hit) return true;
    }
    return false;
  }

  Value split(const std::string& s, const Args& a) {
    const std::string* sep = str_param(a, 0, "sep", "split");
    const Value* maxv = param(a, 1, "maxsplit");
    int64_t max = maxv ? maxv->as_int() : -1;
    List out;
    auto add = [&](std::string part) {
      budget_.check_items(out.size() + 1);
      budget_.step(kItemSteps);  // the bytes come from s, already counted
      out.push_back(Value::str(std::move(part)));
    };
    if (sep) {
      if (sep->empty()) error("split(): empty separator");
      Finder finder(*sep);
      size_t b = 0;
      for (size_t p; (max < 0 || static_cast<int64_t>(out.size()) < max) &&
                     (p = finder.find(s, b)) != std::string::npos;
           b = p + sep->size()) {
        add(s.substr(b, p - b));
      }
      add(s.substr(b));
      return Value::list_of(std::move(out));
    }
    size_t p = 0;
    while (true) {
      while (p < s.size() && is_space(s[p])) ++p;
      if (p == s.size()) break;
      if (max >= 0 && static_cast<int64_t>(out.size()) == max) {
        add(strip(s.substr(p), false, true));
        break;
      }
      size_t b = p;
      while (p < s.size() && !is_space(s[p])) ++p;
      add(s.substr(b, p - b));
    }
    return Value::list_of(std::move(out));
  }

  Value replace(const std::string& s, const Args& a) {
    const std::string* from = str_param(a, 0, "old", "replace");
    const std::string* to = str_param(a, 1, "new", "replace");
    if (!from || !to) error("replace() takes 2 string arguments");
    const Value* countv = param(a, 2, "count");
    int64_t count = countv && !countv->is(K::None) ? countv->as_int() : -1;
    Finder finder(*from);
    std::string out;
    size_t b = 0;
    for (int64_t done = 0; count < 0 || done < count; ++done) {
      size_t p = from->empty() ? (b <= s.size() ? b : std::string::npos) : finder.find(s, b);
      if (p == std::string::npos) break;
      if (from->empty()) {
        out += *to;
        if (p < s.size()) out += s[p];
        b = p + 1;
      } else {
        out.append(s, b, p - b);
        out += *to;
        b = p + from->size();
      }
      budget_.check_string(out.size());
    }
    if (b <= s.size()) out.append(s, b, std::string::npos);
    budget_.check_string(out.size());
    return Value::str(std::move(out));
  }

  static std::string capitalize(const std::string& s) {
    std::string out = ascii_case(s, false);
    if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
    return out;
  }

  Value dict_method(const Value& d, const std::string& name, const Args& a) {
    if (name == "get") {
      check_arity(a, 2, "get");
      const Value* key = param(a, 0, "key");
      if (!key) error("get expected at least 1 argument, got 0");
      budget_.step(lookup_steps(d.dict->size()));
      const Value* hit = key->is(K::Str) ? d.find(key->s) : nullptr;
      if (hit) return *hit;
      return a.pos.size() > 1 ? a.pos[1] : Value::none();
    }
    if (name != "items" && name != "keys" && name != "values") {
      error(fmt::format("'dict' object has no method '{}' in the supported Jinja subset", name));
    }
    budget_.items(2 * d.dict->size());
    List out;
    out.reserve(d.dict->size());
    for (const auto& [key, v] : *d.dict) {
      budget_.bytes(key.size() + v.s.size());
      if (name == "items") {
        out.push_back(Value::list_of({Value::str(key), v}, true));
      } else if (name == "keys") {
        out.push_back(Value::str(key));
      } else {
        out.push_back(v);
      }
    }
    return Value::list_of(std::move(out));
  }

  // --- filters and tests

  Value eval_filter(const Expr& e) {
    Value v = eval(*e.args[0]);
    Args a = eval_args(e);
    return filter(e.name, v, a);
  }

  Value filter(const std::string& name, const Value& v, const Args& a) {
    if (name == "default" || name == "d") {
      const Value* dflt = param(a, 0, "default_value");
      const Value* boolean = param(a, 1, "boolean");
      bool use = v.is(K::Undef) || (boolean && truthy(*boolean) && !truthy(v));
      return use ? (dflt ? *dflt : Value::str("")) : v;
    }
    if (name == "length" || name == "count") return Value::integer(length(v));
    if (name == "tojson") return tojson(v, a);
    if (name == "first" || name == "last") {
      bool first = name == "first";
      if (v.is(K::List) && !v.list->empty()) return first ? v.list->front() : v.list->back();
      if (v.is(K::Str) && !v.s.empty()) {
        return Value::str(cp_at(v.s, first ? 0 : cp_prev(v.s, v.s.size())));
      }
      List items = iterate(v);
      if (items.empty()) return Value::undef(fmt::format("{} of an empty sequence", name));
      return first ? items.front() : items.back();
    }
    if (name == "join") {
      const std::string* sep = str_param(a, 0, "d", "join");
      std::string out;
      List items = iterate(v);
      for (size_t k = 0; k < items.size(); ++k) {
        if (k && sep) out += *sep;
        out += str(items[k]);
        budget_.check_string(out.size());
      }
      return Value::str(std::move(out));
    }
    if (name == "list") return Value::list_of(iterate(v));
    if (name == "items") {
      if (v.is(K::Undef)) return Value::list_of({});
      if (!v.is(K::Dict)) error(fmt::format("items: expected a mapping, got '{}'", type_name(v)));
      return dict_method(v, "items", {});
    }
    if (name == "int" || name == "float" || name == "abs") return number_filter(name, v, a);
    std::string s = str(v);
    if (name == "trim") return Value::str(strip(s, true, true, str_param(a, 0, "chars", name)));
    if (name == "upper" || name == "lower") return Value::str(ascii_case(s, name == "upper"));
    if (name == "capitalize") return Value::str(capitalize(s));
    if (name == "string") return Value::str(s);
    if (name == "replace") return replace(s, a);
    error(fmt::format("unknown filter '{}'", name));
  }

  int64_t length(const Value& v) const {
    switch (v.k) {
      case K::Undef:
        return 0;
      case K::Str:
        return static_cast<int64_t>(cp_count(v.s));
      case K::List:
        return static_cast<int64_t>(v.list->size());
      case K::Dict:
        return static_cast<int64_t>(v.dict->size());
      default:
        error(fmt::format("object of type '{}' has no len()", type_name(v)));
    }
  }

  Value tojson(const Value& v, const Args& a) {
    for (const auto& [key, x] : a.kw) {
      if (key != "indent" && key != "ensure_ascii") {
        error(fmt::format("tojson: argument '{}' is outside the supported Jinja subset", key));
      }
    }
    const Value* indent = param(a, 0, "indent");
    int64_t ind = -1;
    if (indent && !indent->is(K::None)) {
      ind = std::max<int64_t>(indent->as_int(), 0);  // json.dumps: a negative indent is 0
      budget_.check_string(static_cast<size_t>(ind));
    }
    std::string out;
    try {
      append_json(out, v, ind, budget_);
    } catch (const NotJson& bad) {
      error(fmt::format("Object of type {} is not JSON serializable", bad.type));
    }
    return Value::str(std::move(out));
  }

  Value number_filter(const std::string& name, const Value& v, const Args& a) const {
    if (name == "abs") {
      check_defined(v);
      if (!v.numeric()) error(fmt::format("bad operand type for abs(): '{}'", type_name(v)));
      return v.is(K::Float)
                 ? Value::real(std::fabs(v.f))
                 : Value::integer(v.as_int() < 0 ? int_op("-", 0, v.as_int()).i : v.as_int());
    }
    const Value* dflt = param(a, 0, "default");
    Value fallback = dflt ? *dflt : name == "int" ? Value::integer(0) : Value::real(0);
    double x = 0;
    if (v.numeric()) {
      x = v.num();
    } else if (v.is(K::Str)) {
      std::string t = strip(v.s, true, true);
      char* end = nullptr;
      x = std::strtod(t.c_str(), &end);
      if (t.empty() || *end) return fallback;
    } else {
      return fallback;
    }
    if (name == "float") return Value::real(x);
    if (v.is(K::Int)) return v;
    if (!(std::fabs(x) < 9.2e18)) error(fmt::format("cannot convert {} to a 64-bit integer", x));
    return Value::integer(static_cast<int64_t>(x));
  }

  bool eval_test(const Expr& e) {
    Value v = eval(*e.args[0]);
    Args a = eval_args(e);
    const std::string& t = e.name;
    if (t == "defined") return !v.is(K::Undef);
    if (t == "undefined") return v.is(K::Undef);
    if (t == "none") return v.is(K::None);
    if (t == "string") return v.is(K::Str);
    if (t == "number") return v.numeric();
    if (t == "integer") return v.is(K::Int);
    if (t == "float") return v.is(K::Float);
    if (t == "boolean") return v.is(K::Bool);
    if (t == "true" || t == "false") return v.is(K::Bool) && v.b == (t == "true");
    if (t == "mapping") return v.is(K::Dict);
    if (t == "iterable") return v.is(K::Str) || v.is(K::List) || v.is(K::Dict) || v.is(K::Undef);
    if (t == "sequence") return v.is(K::Str) || v.is(K::List) || v.is(K::Dict);
    const Value* arg = param(a, 0, "other");
    if (t == "eq" || t == "equalto" || t == "ne") {
      if (!arg) error(fmt::format("test '{}' needs an argument", t));
      return equal(v, *arg, budget_) == (t != "ne");
    }
    if (t == "in") {
      if (!arg) error("test 'in' needs an argument");
      return contains(*arg, v);
    }
    check_defined(v);
    if (!v.is(K::Int) && !v.is(K::Bool)) error(fmt::format("test '{}' needs an integer", t));
    if (t == "odd" || t == "even") return (v.as_int() % 2 != 0) == (t == "odd");
    if (!arg || !arg->numeric() || arg->as_int() == 0) {
      error("test 'divisibleby' needs a non-zero integer");
    }
    if (arg->as_int() == -1) return true;  // INT64_MIN % -1 overflows
    return v.as_int() % arg->as_int() == 0;
  }
};

}  // namespace

namespace detail {

/// The parsed template shared by copies of a ChatTemplate.
struct ParsedTemplate {
  std::string source;
  std::string where;
  std::vector<Node> body;
};

}  // namespace detail

ChatTemplate::ChatTemplate(const std::string& source, const std::string& where) {
  auto parsed = std::make_shared<detail::ParsedTemplate>();
  parsed->source = source;
  parsed->where = where;
  std::string text = normalize_newlines(source);
  parsed->body = Parser(TemplateLexer(text, where).run(), parsed->where).run();
  parsed_ = std::move(parsed);
}

std::string ChatTemplate::render(const nlohmann::json& context) const {
  return render(context, RenderLimits{});
}

std::string ChatTemplate::render(const nlohmann::json& context, const RenderLimits& limits) const {
  MOXING_CHECK(limits.max_steps > 0 && limits.max_bytes > 0,
               "{}: render limits must be positive (max_steps {}, max_bytes {})", parsed_->where,
               limits.max_steps, limits.max_bytes);
  MOXING_CHECK(context.is_object() || context.is_null(),
               "{}: the render context must be a JSON object, got {}", parsed_->where,
               context.type_name());
  Dict ctx;
  if (context.is_object()) ctx = *from_json(context).dict;
  Renderer r(parsed_->where, std::move(ctx), limits);
  r.exec(parsed_->body);
  return std::move(r.out);
}

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt, const std::string& bos_token,
                                const std::string& eos_token) const {
  nlohmann::json msgs = nlohmann::json::array();
  for (const auto& m : messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
  return render({{"messages", msgs},
                 {"add_generation_prompt", add_generation_prompt},
                 {"bos_token", bos_token},
                 {"eos_token", eos_token}});
}

const std::string& ChatTemplate::source() const { return parsed_->source; }

}  // namespace moxing::tokenizers
