// safetensors: round trips of every dtype, metadata, zero-copy loading, files written by the
// Python `safetensors` package (tests/fixtures/safetensors_files.py) read here and written
// here byte for byte, and one test per kind of malformed file with its exact error.
#include "moxing/io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

using namespace moxing;
namespace fs = std::filesystem;

namespace {

const std::string kFixtures = std::string(MOXING_FIXTURE_DIR) + "/safetensors/";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string raw_bytes(const Tensor& t) {
  Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), c.numel() * dtype_size(c.dtype()));
}

// A file from its header length, header text and data section.
std::string make_file(uint64_t header_len, const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &header_len, 8);
  return out + header + data;
}
std::string make_file(const std::string& header, const std::string& data) {
  return make_file(header.size(), header, data);
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("moxing_safetensors_test_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

NamedTensors every_dtype() {
  return {
      {"f32", from_vector<float>({1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f}, {2, 3})},
      {"f64", from_vector<double>({1.0 / 3.0, -2.0, 1e300}, {3})},
      {"bf16", from_vector<float>({1.0f, -2.5f, 0.15625f, 256.0f}, {2, 2}).to(DType::bf16)},
      {"f16", from_vector<float>({0.5f, -1.25f, 1024.0f}, {3}).to(DType::f16)},
      {"i64", from_vector<int64_t>({-3, 0, int64_t{1} << 40}, {3})},
      {"i32", from_vector<int32_t>({-7, 8}, {2, 1})},
      {"u8", from_vector<uint8_t>({0, 200, 255}, {3})},
      {"bool", from_vector<bool>({true, false, true, true}, {4})},
      {"scalar", scalar_tensor(3.25)},
      {"empty", zeros({0, 3})},
  };
}

void expect_same(const NamedTensors& expected, const SafetensorsFile& got) {
  ASSERT_EQ(got.tensors.size(), expected.size());
  for (const auto& [name, t] : expected) {
    SCOPED_TRACE(name);
    Tensor g = got.get(name);
    EXPECT_EQ(g.dtype(), t.dtype());
    EXPECT_EQ(g.shape(), t.shape());
    EXPECT_EQ(raw_bytes(g), raw_bytes(t));
  }
}

}  // namespace

TEST_F(SafetensorsTest, RoundTripEveryDtype) {
  NamedTensors tensors = every_dtype();
  save_safetensors(path("a.safetensors"), tensors);
  SafetensorsFile f = load_safetensors(path("a.safetensors"));
  expect_same(tensors, f);
  // written in the order given
  for (size_t k = 0; k < tensors.size(); ++k) EXPECT_EQ(f.tensors[k].first, tensors[k].first);
  EXPECT_TRUE(f.metadata.empty());
  EXPECT_FALSE(fs::exists(path("a.safetensors.tmp")));
  EXPECT_EQ(serialize_safetensors(tensors), read_bytes(path("a.safetensors")));
}

TEST_F(SafetensorsTest, NonContiguousInputIsWrittenInRowMajorOrder) {
  Tensor base = arange(0.0, 12.0, 1.0, DType::f32).reshape({3, 4});
  Tensor transposed = base.t();             // (4, 3)
  Tensor strided = base.slice(1, 0, 4, 2);  // (3, 2)
  Tensor bf = base.to(DType::bf16).t();     // (4, 3) bf16
  ASSERT_FALSE(transposed.is_contiguous());
  ASSERT_FALSE(strided.is_contiguous());
  save_safetensors(path("nc.safetensors"), {{"t", transposed}, {"s", strided}, {"b", bf}});
  SafetensorsFile f = load_safetensors(path("nc.safetensors"));
  EXPECT_EQ(f.get("t").shape(), (Shape{4, 3}));
  EXPECT_EQ(f.get("t").to_vector<float>(), transposed.to_vector<float>());
  EXPECT_EQ(f.get("s").to_vector<float>(), strided.to_vector<float>());
  EXPECT_EQ(f.get("b").to_vector<float>(), transposed.to_vector<float>());
}

TEST_F(SafetensorsTest, MetadataRoundTrip) {
  std::map<std::string, std::string> metadata{
      {"format", "pt"}, {"empty", ""}, {"quotes", "say \"hi\"\\ \n\t"}, {"unicode", "模型 ✓"}};
  save_safetensors(path("m.safetensors"), {{"w", ones({2})}}, metadata);
  SafetensorsFile f = load_safetensors(path("m.safetensors"));
  EXPECT_EQ(f.metadata, metadata);
  // a file with metadata and no tensors is valid too
  save_safetensors(path("only_metadata.safetensors"), {}, {{"k", "v"}});
  SafetensorsFile g = load_safetensors(path("only_metadata.safetensors"));
  EXPECT_TRUE(g.tensors.empty());
  EXPECT_EQ(g.metadata.at("k"), "v");
}

TEST_F(SafetensorsTest, HeaderIsPaddedSoDataStartsAtMultipleOf8) {
  for (int n = 1; n <= 9; ++n) {
    std::string bytes = serialize_safetensors({{std::string(n, 'x'), ones({1})}});
    uint64_t header_len;
    std::memcpy(&header_len, bytes.data(), 8);
    EXPECT_EQ(header_len % 8, 0u);
    EXPECT_EQ(bytes[8 + header_len - 1] == ' ' || bytes[8 + header_len - 1] == '}', true);
    EXPECT_EQ(bytes.size(), 8 + header_len + 4);
  }
}

TEST_F(SafetensorsTest, F32IsZeroCopyIntoTheMapping) {
  save_safetensors(path("z.safetensors"),
                   {{"a", arange(0.0, 6.0, 1.0, DType::f32)}, {"b", full({4}, 2.0, DType::f32)}});
  Tensor a;
  {
    SafetensorsFile f = load_safetensors(path("z.safetensors"));
    ASSERT_NE(f.bytes, nullptr);
    for (const auto& [name, t] : f.tensors) {
      auto p = static_cast<const uint8_t*>(t.raw_data());
      EXPECT_GE(p, f.bytes) << name;
      EXPECT_LE(p + t.numel() * 4, f.bytes + f.size) << name;
    }
    a = f.get("a");
  }
  // the mapping outlives the SafetensorsFile through the tensor
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  // writing to a loaded tensor never reaches the file
  a.mul_(10.0);
  EXPECT_EQ(a.to_vector<float>()[5], 50.0f);
  EXPECT_EQ(load_safetensors(path("z.safetensors")).get("a").to_vector<float>()[5], 5.0f);
}

TEST_F(SafetensorsTest, MisalignedTensorsAreCopied) {
  // u8 (3 bytes) first puts the f32 at data offset 3: it cannot view the mapping
  save_safetensors(path("m.safetensors"), {{"u", from_vector<uint8_t>({1, 2, 3})},
                                           {"f", from_vector<float>({1.5f, -2.5f})}});
  SafetensorsFile f = load_safetensors(path("m.safetensors"));
  Tensor t = f.get("f");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 4, 0u);
  auto p = static_cast<const uint8_t*>(t.raw_data());
  EXPECT_TRUE(p < f.bytes || p >= f.bytes + f.size);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1.5f, -2.5f}));
}

TEST_F(SafetensorsTest, OverwriteKeepsEarlierLoadsIntact) {
  save_safetensors(path("w.safetensors"), {{"w", full({3}, 1.0)}});
  Tensor before = load_safetensors(path("w.safetensors")).get("w");
  save_safetensors(path("w.safetensors"), {{"w", full({3}, 2.0)}});
  EXPECT_EQ(before.to_vector<float>(), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(load_safetensors(path("w.safetensors")).get("w").to_vector<float>(),
            (std::vector<float>{2, 2, 2}));
}

TEST_F(SafetensorsTest, ParseCopiesTheCallersBuffer) {
  std::string bytes = serialize_safetensors({{"w", from_vector<float>({1, 2, 3})}}, {{"k", "v"}});
  std::vector<uint8_t> buf(bytes.begin(), bytes.end());
  SafetensorsFile f = parse_safetensors(buf.data(), buf.size(), "buffer");
  std::fill(buf.begin(), buf.end(), 0xff);
  EXPECT_EQ(f.get("w").to_vector<float>(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(f.metadata.at("k"), "v");
}

TEST_F(SafetensorsTest, GetListsTheNamesOnAMiss) {
  SafetensorsFile f = load_safetensors(
      (save_safetensors(path("g.safetensors"), {{"wte", ones({1})}, {"wpe", ones({1})}}),
       path("g.safetensors")));
  EXPECT_TRUE(f.contains("wte"));
  EXPECT_FALSE(f.contains("lm_head"));
  try {
    f.get("lm_head");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              path("g.safetensors") + ": no tensor named 'lm_head'; the file has 'wte', 'wpe'");
  }
}

TEST_F(SafetensorsTest, SaveRejectsBadNames) {
  EXPECT_THROW(save_safetensors(path("d.safetensors"), {{"a", ones({1})}, {"a", ones({1})}}),
               Error);
  EXPECT_THROW(save_safetensors(path("d.safetensors"), {{"__metadata__", ones({1})}}), Error);
  EXPECT_THROW(save_safetensors(path("d.safetensors"), {{"u", Tensor()}}), Error);
  EXPECT_THROW(save_safetensors(path("d.safetensors"), {{"\xff", ones({1})}}), Error);
  EXPECT_FALSE(fs::exists(path("d.safetensors")));
  EXPECT_FALSE(fs::exists(path("d.safetensors.tmp")));
  try {
    save_safetensors(path("d.safetensors"), {{"a", ones({1})}, {"a", ones({1})}});
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "save_safetensors: " + path("d.safetensors") + ": duplicate tensor name 'a'");
  }
}

TEST_F(SafetensorsTest, SaveIntoMissingFolderFails) {
  EXPECT_THROW(save_safetensors(path("no/such/folder/x.safetensors"), {{"a", ones({1})}}), Error);
}

// ---- files written by the Python safetensors package

TEST_F(SafetensorsTest, LoadsPythonWrittenFile) {
  SafetensorsFile f = load_safetensors(kFixtures + "all_dtypes.safetensors");
  EXPECT_EQ(
      f.metadata,
      (std::map<std::string, std::string>{
          {"format", "pt"}, {"source", "tests/fixtures/safetensors_files.py"}, {"step", "42"}}));
  ASSERT_EQ(f.tensors.size(), 10u);
  EXPECT_EQ(f.get("f32").shape(), (Shape{2, 3}));
  EXPECT_EQ(f.get("f32").to_vector<float>(), (std::vector<float>{-1, -0.5, 0, 0.5, 1, 1.5}));
  EXPECT_EQ(f.get("f64").to_vector<double>(), (std::vector<double>{0, 1 / 3.0, 2 / 3.0, 1}));
  EXPECT_EQ(f.get("bf16").dtype(), DType::bf16);
  EXPECT_EQ(f.get("bf16").shape(), (Shape{2, 2}));
  EXPECT_EQ(f.get("bf16").to_vector<float>(), (std::vector<float>{1.0f, -2.5f, 0.15625f, 256.0f}));
  EXPECT_EQ(f.get("f16").dtype(), DType::f16);
  EXPECT_EQ(f.get("f16").to_vector<float>(),
            (std::vector<float>{0.5f, -1.25f, 1024.0f, 1.0f / 16384.0f}));
  EXPECT_EQ(f.get("i64").to_vector<int64_t>(), (std::vector<int64_t>{-3, 0, int64_t{1} << 40}));
  EXPECT_EQ(f.get("i32").shape(), (Shape{2, 1}));
  EXPECT_EQ(f.get("i32").to_vector<int32_t>(), (std::vector<int32_t>{-7, 8}));
  EXPECT_EQ(f.get("u8").to_vector<uint8_t>(), (std::vector<uint8_t>{0, 200, 255}));
  EXPECT_EQ(f.get("bool").dtype(), DType::boolean);
  EXPECT_EQ(f.get("bool").to_vector<int32_t>(), (std::vector<int32_t>{1, 0, 1}));
  EXPECT_EQ(f.get("scalar").dim(), 0);
  EXPECT_EQ(f.get("scalar").item<float>(), 3.25f);
  EXPECT_EQ(f.get("empty").shape(), (Shape{0, 3}));
  // the package aligns every tensor, so none needed a copy
  for (const auto& [name, t] : f.tensors) {
    if (t.numel() == 0) continue;
    auto p = static_cast<const uint8_t*>(t.raw_data());
    EXPECT_TRUE(p >= f.bytes && p < f.bytes + f.size) << name;
  }
}

TEST_F(SafetensorsTest, WriterMatchesPythonBytes) {
  // The package orders tensors by dtype and name; given that order (the file's data order),
  // moxing writes the same header and data byte for byte.
  for (const char* name : {"one_metadata_key.safetensors", "no_metadata.safetensors"}) {
    SCOPED_TRACE(name);
    std::string expected = read_bytes(kFixtures + name);
    SafetensorsFile f = load_safetensors(kFixtures + name);
    EXPECT_EQ(serialize_safetensors(f.tensors, f.metadata), expected);
    save_safetensors(path(name), f.tensors, f.metadata);
    EXPECT_EQ(read_bytes(path(name)), expected);
  }
}

// ---- malformed files: each kind gives its own message, naming the file

namespace {

struct BadCase {
  const char* label;
  std::string bytes;
  std::string message;  // expected text after "<file>: "
};

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":{}}})", name, dtype, shape,
                     offsets);
}

std::vector<BadCase> bad_cases() {
  const std::string d8(8, '\0');
  const std::string a = entry("a", "F32", "[2]", "[0,8]");
  std::string valid = serialize_safetensors({{"w", from_vector<float>({1, 2, 3})}});
  return {
      {"empty file", "", "file is empty (a safetensors file starts with an 8-byte header length)"},
      {"shorter than 8 bytes", std::string(5, '\x01'),
       "file is 5 bytes, shorter than the 8-byte header length"},
      {"header length past the end", make_file(100, "{}", d8),
       "header length 100 runs past the end of the file (18 bytes)"},
      {"header length 2^63", make_file(uint64_t{1} << 63, "{}", ""),
       "header length 9223372036854775808 is over the 100000000 byte limit (not a safetensors "
       "file, or corrupt)"},
      {"invalid JSON", make_file(R"({"a":)", ""),
       "header is not valid JSON: [json.exception.parse_error.101] parse error at line 1, column "
       "6: syntax error while parsing value - unexpected end of input; expected '[', '{', or "
       "a literal"},
      {"invalid UTF-8", make_file("{\"\xff\":1}", ""), "header is not valid JSON: "},
      {"header not an object", make_file("[1,2]", ""), "header is not a JSON object (it is array)"},
      {"entry not an object", make_file(R"({"a":5})", ""), "tensor 'a': entry is not an object: 5"},
      {"missing dtype", make_file(R"({"a":{"shape":[],"data_offsets":[0,4]}})", d8.substr(4)),
       "tensor 'a': missing or non-string dtype"},
      {"unknown dtype", make_file("{" + entry("a", "I16", "[1]", "[0,2]") + "}", "xy"),
       "tensor 'a': unknown dtype 'I16' (moxing reads F32, F64, BF16, F16, I64, I32, U8, I8, "
       "BOOL)"},
      {"negative dimension", make_file("{" + entry("a", "F32", "[-1,2]", "[0,8]") + "}", d8),
       "tensor 'a': shape [-1,2] has a negative dimension"},
      {"fractional dimension", make_file("{" + entry("a", "F32", "[1.5]", "[0,8]") + "}", d8),
       "tensor 'a': shape [1.5] is not a list of integers"},
      {"element count overflow",
       make_file(
           "{" + entry("a", "F32", "[4611686018427387904,4611686018427387904,0]", "[0,0]") + "}",
           ""),
       "tensor 'a': shape [4611686018427387904,4611686018427387904,0] has too many elements"},
      {"byte count overflow",
       make_file("{" + entry("a", "F64", "[4611686018427387904]", "[0,8]") + "}", d8),
       "tensor 'a': shape [4611686018427387904] has too many elements"},
      {"shape x dtype != byte range", make_file("{" + entry("a", "F32", "[3]", "[0,8]") + "}", d8),
       "tensor 'a': shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8"},
      {"malformed data_offsets", make_file("{" + entry("a", "F32", "[2]", "[0]") + "}", d8),
       "tensor 'a': data_offsets must be [begin, end] with two non-negative integers, got [0]"},
      {"negative offset", make_file("{" + entry("a", "F32", "[2]", "[-8,0]") + "}", d8),
       "tensor 'a': data_offsets must be [begin, end] with two non-negative integers, got [-8,0]"},
      {"begin after end", make_file("{" + entry("a", "F32", "[0]", "[8,4]") + "}", d8),
       "tensor 'a': data_offsets [8, 4] begin after they end"},
      {"offsets past the data section",
       make_file("{" + entry("a", "F32", "[2]", "[8,16]") + "}", d8),
       "tensor 'a': data_offsets [8, 16] run past the end of the data section (8 bytes; is the "
       "file truncated?)"},
      {"overlapping ranges",
       make_file("{" + a + "," + entry("b", "F32", "[2]", "[4,12]") + "}", d8 + d8.substr(4)),
       "tensors 'a' [0, 8] and 'b' [4, 12] overlap"},
      {"same range twice", make_file("{" + a + "," + entry("b", "F32", "[2]", "[0,8]") + "}", d8),
       "tensors 'a' [0, 8] and 'b' [0, 8] overlap"},
      {"hole between ranges",
       make_file("{" + a + "," + entry("b", "F32", "[1]", "[12,16]") + "}", d8 + d8),
       "bytes [8, 12) of the data section belong to no tensor (a hole before 'b')"},
      {"hole at the start", make_file("{" + entry("a", "F32", "[1]", "[4,8]") + "}", d8),
       "bytes [0, 4) of the data section belong to no tensor (a hole before 'a')"},
      {"bytes after the last tensor", make_file("{" + a + "}", d8 + d8),
       "bytes [8, 16) at the end of the data section belong to no tensor"},
      {"metadata not an object", make_file(R"({"__metadata__":[1]})", ""),
       "__metadata__ is not an object (it is array)"},
      {"metadata value not a string", make_file(R"({"__metadata__":{"step":42}})", ""),
       "__metadata__ value for 'step' is not a string: 42"},
      {"duplicate tensor name", make_file("{" + a + "," + a + "}", d8),
       "duplicate tensor name 'a' in the header"},
      {"duplicate key in an entry",
       make_file(R"({"a":{"dtype":"F32","dtype":"U8","shape":[2],"data_offsets":[0,8]}})", d8),
       "duplicate key 'dtype' in the header"},
      {"bool byte not 0 or 1",
       make_file("{" + entry("a", "BOOL", "[3]", "[0,3]") + "}", std::string("\1\2\0", 3)),
       "tensor 'a': BOOL element 1 is 2, not 0 or 1"},
      {"truncated data section", valid.substr(0, valid.size() - 4),
       "tensor 'w': data_offsets [0, 12] run past the end of the data section (8 bytes; is the "
       "file truncated?)"},
  };
}

}  // namespace

TEST_F(SafetensorsTest, MalformedFilesGiveTheirOwnError) {
  for (const BadCase& c : bad_cases()) {
    SCOPED_TRACE(c.label);
    // in memory
    try {
      parse_safetensors(reinterpret_cast<const uint8_t*>(c.bytes.data()), c.bytes.size(), "bad");
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      std::string what = e.what();
      EXPECT_EQ(what.substr(0, std::min(what.size(), 5 + c.message.size())), "bad: " + c.message);
    }
    // from a file
    std::string p = path("bad.safetensors");
    write_bytes(p, c.bytes);
    try {
      load_safetensors(p);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find(p + ": " + c.message), 0u) << e.what();
    }
  }
}

TEST_F(SafetensorsTest, MissingPathAndFolderAreErrors) {
  try {
    load_safetensors(path("nope.safetensors"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              path("nope.safetensors") + ": cannot open: No such file or directory");
  }
  try {
    load_safetensors(dir_.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir_.string() + ": is a folder, not a safetensors file");
  }
}

TEST_F(SafetensorsTest, HostileHeadersNeverCrash) {
  // deep nesting, huge numbers, stray bytes: all errors, none a crash
  std::vector<std::string> headers = {
      "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}",
      R"({"a":{"dtype":"F32","shape":)" + std::string(100000, '[') + std::string(100000, ']') +
          R"(,"data_offsets":[0,4]}})",
      R"({"__metadata__":{"k":)" + std::string(100000, '[') + std::string(100000, ']') + "}}",
      R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,0]}})",
      R"({"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}})",
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})",
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551615,3]}})",
      R"({"a":{"dtype":"F32","shape":{},"data_offsets":[0,4]}})",
      R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})",
      std::string("{\"a\"\0:1}", 8),
  };
  for (const std::string& h : headers) {
    std::string bytes = make_file(h, std::string(4, '\0'));
    EXPECT_THROW(
        parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "h"), Error)
        << h.substr(0, 60);
  }
}

TEST_F(SafetensorsTest, DtypeNames) {
  for (const auto& [name, t] : every_dtype()) {
    const char* file_name = safetensors_dtype_name(t.dtype());
    EXPECT_EQ(dtype_from_safetensors_name(file_name), t.dtype()) << name;
  }
  EXPECT_EQ(dtype_from_safetensors_name("F8_E4M3"), std::nullopt);
}
