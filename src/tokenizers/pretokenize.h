// Pieces shared by the tokenizers: the GPT-2 byte <-> unicode map, the GPT-2 pre-tokenization
// pattern as a hand-written scanner, and the split of text on added tokens.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moxing::tokenizers::detail {

/// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100.. in byte order, so that every token is printable text.
const std::array<char32_t, 256>& byte_to_unicode();
/// The inverse map: code point -> byte, or -1.
int unicode_to_byte(char32_t cp);
/// The unicode-mapped form of raw bytes.
std::string bytes_to_mapped(std::string_view bytes);
/// Raw bytes of a mapped token; false when a character is not in the map.
bool mapped_to_bytes(std::string_view token, std::string& out);

/// Unicode White_Space (what Rust's char::is_whitespace and the regex \s match).
bool is_white_space(char32_t c);

/// Character classes of the GPT-2 pattern: \s (Unicode White_Space), \p{L}, \p{N}, the rest.
enum CharClass : uint8_t { kSpace = 0, kLetter = 1, kNumber = 2, kOther = 3 };

struct CharInfo {
  CharClass cls;
  uint8_t len;  // bytes
};

/// Class and length of the (valid) UTF-8 character at s[i].
CharInfo char_at(std::string_view s, size_t i);

/// Splits valid UTF-8 text as HF's ByteLevel pre-tokenizer does with the GPT-2 pattern
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// calling emit(piece) for each match in order (the pieces cover the text).
template <class F>
void split_gpt2(std::string_view s, F&& emit) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] == '\'' && i + 1 < n) {
      char a = s[i + 1];
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        emit(s.substr(i, 2));
        i += 2;
        continue;
      }
      if (i + 2 < n) {
        char b = s[i + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
          emit(s.substr(i, 3));
          i += 3;
          continue;
        }
      }
    }
    CharInfo c = char_at(s, i);
    size_t j = i + c.len;  // the run of class cls continues from j
    CharClass cls = c.cls;
    if (s[i] == ' ' && j < n) {
      CharInfo d = char_at(s, j);
      if (d.cls != kSpace) {
        cls = d.cls;
        j += d.len;
      }
    }
    if (cls == kSpace) {
      // \s+(?!\S): the whole run when it ends the text, else all but its last character
      // (which then starts the next piece); a single whitespace character is \s+.
      size_t k = j, last = i;
      while (k < n) {
        CharInfo e = char_at(s, k);
        if (e.cls != kSpace) break;
        last = k;
        k += e.len;
      }
      size_t end = (k == n || last == i) ? k : last;
      emit(s.substr(i, end - i));
      i = end;
      continue;
    }
    while (j < n) {
      CharInfo e = char_at(s, j);
      if (e.cls != cls) break;
      j += e.len;
    }
    emit(s.substr(i, j - i));
    i = j;
  }
}

/// Splits text on added tokens (leftmost, then longest match): emit(piece, id) with id = -1
/// for the text between them. A token with lstrip (rstrip) also takes the whitespace before
/// (after) it, as HF's AddedToken does. Empty pieces are not emitted.
class AddedSplitter {
 public:
  void add(const std::string& content, int32_t id, bool lstrip = false, bool rstrip = false);
  template <class F>
  void split(std::string_view s, F&& emit) const {
    if (tokens_.empty()) {
      if (!s.empty()) emit(s, -1);
      return;
    }
    size_t start = 0;  // where the text not yet emitted begins
    size_t i = 0;
    while (i < s.size()) {
      const Entry* hit = nullptr;
      if (first_[static_cast<unsigned char>(s[i])]) {
        for (const auto& t : tokens_) {
          if (t.content.size() <= s.size() - i && s.compare(i, t.content.size(), t.content) == 0) {
            hit = &t;
            break;
          }
        }
      }
      if (!hit) {
        ++i;
        continue;
      }
      size_t from = i, to = i + hit->content.size();
      if (hit->lstrip) from = whitespace_before(s, start, from);
      if (hit->rstrip) to = whitespace_after(s, to);
      if (from > start) emit(s.substr(start, from - start), -1);
      emit(s.substr(from, to - from), hit->id);
      start = i = to;
    }
    if (start < s.size()) emit(s.substr(start), -1);
  }
  bool empty() const { return tokens_.empty(); }

 private:
  struct Entry {
    std::string content;
    int32_t id;
    bool lstrip, rstrip;
  };
  // Start of the whitespace run that ends at `to` (not before `floor`).
  static size_t whitespace_before(std::string_view s, size_t floor, size_t to);
  // End of the whitespace run that starts at `from`.
  static size_t whitespace_after(std::string_view s, size_t from);
  std::vector<Entry> tokens_;  // longest first
  std::array<bool, 256> first_{};
};

}  // namespace moxing::tokenizers::detail
