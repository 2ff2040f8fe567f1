// UTF-8 validation for the tokenizers: where the first invalid sequence is, and the
// replacement of invalid sequences by U+FFFD the way Python's errors="replace" does it
// (one U+FFFD per maximal invalid subpart). Not a transcoder: UTF-8 in, UTF-8 out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moxing::tokenizers {

/// Byte offset of the first invalid UTF-8 sequence in text, or std::string_view::npos.
size_t find_invalid_utf8(std::string_view text);

/// text with each maximal invalid subpart replaced by U+FFFD (like Python's errors="replace").
std::string replace_invalid_utf8(std::string_view text);

/// Throws moxing::Error "<what>: invalid UTF-8 at byte N (...)" when text is not valid UTF-8.
void check_utf8(std::string_view text, std::string_view what);

namespace detail {

/// Length of the valid UTF-8 sequence that starts at s[i] (1-4, code point in *cp), or
/// -k when the bytes s[i, i+k) are a maximal invalid subpart, or 0 when s ends inside a
/// sequence that is valid so far (a truncated character).
int utf8_sequence(std::string_view s, size_t i, char32_t* cp);

/// Appends the UTF-8 encoding of cp to out.
void append_utf8(std::string& out, char32_t cp);

}  // namespace detail

}  // namespace moxing::tokenizers
