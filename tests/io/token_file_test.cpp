// Token files: round trips at both element sizes, range checks, truncated files.
#include "moxing/io/token_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "moxing/core/error.h"
#include "op_harness.h"

namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("moxing_token_file_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

TEST(TokenFile, ElementSizeFollowsTheVocabulary) {
  EXPECT_EQ(moxing::token_element_size(50257), 2);
  EXPECT_EQ(moxing::token_element_size(65536), 2);
  EXPECT_EQ(moxing::token_element_size(65537), 4);
}

TEST(TokenFile, RoundTripsUint16AndUint32) {
  std::vector<int32_t> ids = {0, 1, 255, 256, 65535, 7, 42};
  std::string p16 = temp_path("a.bin");
  moxing::write_token_file(p16, ids, 2);
  EXPECT_EQ(fs::file_size(p16), ids.size() * 2);
  moxing::TokenFile f16(p16, 2);
  EXPECT_EQ(f16.size(), 7);
  EXPECT_EQ(f16.to_vector(), ids);
  EXPECT_EQ(f16[4], 65535);

  ids.push_back(70000);
  std::string p32 = temp_path("b.bin");
  moxing::write_token_file(p32, ids, 4);
  moxing::TokenFile f32(p32, 4);
  EXPECT_EQ(f32.to_vector(), ids);
  std::vector<int64_t> window(3);
  f32.read(5, 3, window.data());
  EXPECT_EQ(window, (std::vector<int64_t>{7, 42, 70000}));
}

TEST(TokenFile, AnIdTooLargeForUint16IsAnError) {
  std::vector<int32_t> ids = {1, 65536};
  std::string msg =
      moxing::testing::error_of([&] { moxing::write_token_file(temp_path("c.bin"), ids, 2); });
  EXPECT_TRUE(moxing::testing::contains(msg, "65536")) << msg;
  EXPECT_TRUE(moxing::testing::contains(msg, "uint16")) << msg;
}

TEST(TokenFile, ATruncatedFileNamesItsSize) {
  std::string p = temp_path("odd.bin");
  std::ofstream(p, std::ios::binary) << "abc";
  std::string msg = moxing::testing::error_of([&] { moxing::TokenFile f(p, 2); });
  EXPECT_TRUE(moxing::testing::contains(msg, "3 bytes is not a multiple of 2")) << msg;
  EXPECT_TRUE(moxing::testing::contains(msg, p)) << msg;
}

TEST(TokenFile, MissingFileAndOutOfRangeWindow) {
  std::string msg = moxing::testing::error_of([] { moxing::TokenFile f("/nonexistent/x.bin", 2); });
  EXPECT_TRUE(moxing::testing::contains(msg, "cannot open")) << msg;
  std::string p = temp_path("d.bin");
  moxing::write_token_file(p, std::vector<int32_t>{1, 2, 3}, 2);
  moxing::TokenFile f(p, 2);
  std::vector<int64_t> out(4);
  EXPECT_THROW(f.read(1, 3, out.data()), moxing::Error);
  EXPECT_THROW(moxing::TokenFile(p, 3), moxing::Error);
}

}  // namespace
