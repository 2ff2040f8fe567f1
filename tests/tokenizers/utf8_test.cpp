// UTF-8 validation and replacement; the expected replacements are what Python's
// bytes.decode("utf-8", errors="replace") gives.
#include "moxing/tokenizers/utf8.h"

#include <gtest/gtest.h>

#include "moxing/core/error.h"

using namespace moxing::tokenizers;

namespace {
const std::string kFFFD = "\xEF\xBF\xBD";
}

TEST(Utf8, FindsTheFirstInvalidByte) {
  EXPECT_EQ(find_invalid_utf8(""), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("plain ascii text, longer than eight bytes"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("中文 😀 é"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("abcdefghij\xFFk"), 10u);
  EXPECT_EQ(find_invalid_utf8("ab\xE4\xB8"), 2u);          // truncated
  EXPECT_EQ(find_invalid_utf8("\xED\xA0\x80"), 0u);        // surrogate
  EXPECT_EQ(find_invalid_utf8("x\xC0\xAF"), 1u);           // overlong
  EXPECT_EQ(find_invalid_utf8("xy\xF4\x90\x80\x80"), 2u);  // above U+10FFFF
}

TEST(Utf8, ReplacesLikePython) {
  EXPECT_EQ(replace_invalid_utf8("\xE4\xB8"), kFFFD);
  EXPECT_EQ(replace_invalid_utf8("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(replace_invalid_utf8("\xF0\x9F\x98"
                                 "a"),
            kFFFD + "a");
  EXPECT_EQ(replace_invalid_utf8("\xC0\xAF"), kFFFD + kFFFD);
  EXPECT_EQ(replace_invalid_utf8("a\xFF"
                                 "b"),
            "a" + kFFFD + "b");
  EXPECT_EQ(replace_invalid_utf8("\xF4\x90\x80\x80"), kFFFD + kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(replace_invalid_utf8("\xE0\x80\xAF"), kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(replace_invalid_utf8("\xF0\x9F\x98\x80\x80"), "😀" + kFFFD);
  EXPECT_EQ(replace_invalid_utf8("中文 ok"), "中文 ok");
}

TEST(Utf8, CheckNamesWhatAndOffset) {
  EXPECT_NO_THROW(check_utf8("fine 好", "input"));
  try {
    check_utf8("hello\x80", "corpus.txt");
    FAIL() << "no error";
  } catch (const moxing::Error& e) {
    EXPECT_NE(std::string(e.what()).find("corpus.txt: invalid UTF-8 at byte 5"), std::string::npos)
        << e.what();
  }
}
