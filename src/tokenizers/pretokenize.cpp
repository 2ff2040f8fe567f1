// Byte <-> unicode map, character classes and the added-token splitter (see pretokenize.h).
#include "pretokenize.h"

#include <utf8proc.h>

#include <algorithm>
#include <memory>

#include "moxing/tokenizers/utf8.h"

namespace moxing::tokenizers::detail {

namespace {

struct ByteMap {
  std::array<char32_t, 256> to_unicode{};
  std::array<int16_t, 324> to_byte{};  // mapped code points are all < 324
  ByteMap() {
    to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      to_unicode[b] = cp;
      to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

CharClass classify(char32_t c) {
  if (is_white_space(c)) return kSpace;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return kNumber;
    default:
      return kOther;
  }
}

// Classes of the Basic Multilingual Plane, computed once (64 KiB): most text never leaves it.
const std::array<CharClass, 0x10000>& bmp_classes() {
  static const auto table = [] {
    auto t = std::make_unique<std::array<CharClass, 0x10000>>();
    for (char32_t c = 0; c < 0x10000; ++c) (*t)[c] = classify(c);
    return t;
  }();
  return *table;
}

}  // namespace

bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

const std::array<char32_t, 256>& byte_to_unicode() { return byte_map().to_unicode; }

int unicode_to_byte(char32_t cp) {
  return cp < byte_map().to_byte.size() ? byte_map().to_byte[cp] : -1;
}

std::string bytes_to_mapped(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char b : bytes) append_utf8(out, byte_to_unicode()[static_cast<unsigned char>(b)]);
  return out;
}

bool mapped_to_bytes(std::string_view token, std::string& out) {
  size_t i = 0;
  while (i < token.size()) {
    char32_t cp;
    int len = utf8_sequence(token, i, &cp);
    if (len <= 0) return false;
    int b = unicode_to_byte(cp);
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
    i += static_cast<size_t>(len);
  }
  return true;
}

CharInfo char_at(std::string_view s, size_t i) {
  auto b = static_cast<unsigned char>(s[i]);
  static const auto& bmp = bmp_classes();
  if (b < 0x80) return {bmp[b], 1};
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  if (b < 0xE0) return {bmp[((b & 0x1Fu) << 6) | (p[1] & 0x3Fu)], 2};
  if (b < 0xF0) {
    return {bmp[((b & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu)], 3};
  }
  char32_t c =
      ((b & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
  return {classify(c), 4};
}

void AddedSplitter::add(const std::string& content, int32_t id, bool lstrip, bool rstrip) {
  if (content.empty()) return;
  tokens_.push_back({content, id, lstrip, rstrip});
  std::stable_sort(tokens_.begin(), tokens_.end(), [](const Entry& a, const Entry& b) {
    return a.content.size() > b.content.size();
  });
  first_[static_cast<unsigned char>(content[0])] = true;
}

size_t AddedSplitter::whitespace_before(std::string_view s, size_t floor, size_t to) {
  while (to > floor) {
    size_t k = to - 1;
    while (k > floor && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
    if (char_at(s, k).cls != kSpace) break;
    to = k;
  }
  return to;
}

size_t AddedSplitter::whitespace_after(std::string_view s, size_t from) {
  while (from < s.size()) {
    CharInfo c = char_at(s, from);
    if (c.cls != kSpace) break;
    from += c.len;
  }
  return from;
}

}  // namespace moxing::tokenizers::detail
