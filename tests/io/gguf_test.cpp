// GGUF: a file gguf-py wrote (tests/fixtures/gguf/make_gguf_fixture.py) reads with every
// metadata type and dequantizes each tensor type to gguf-py's values; files moxing writes read
// back identically; truncated and hostile files are clear errors.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "model_checks.h"
#include "moxing/io/gguf.h"
#include "moxing/io/safetensors.h"
#include "moxing/moxing.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
using moxing::testing::TempDir;

namespace {

const std::string kDir = std::string(MOXING_FIXTURE_DIR) + "/gguf/";

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

GgufFile parse(const std::string& bytes, const std::string& name = "test.gguf") {
  return parse_gguf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
}

std::string parse_error(const std::string& bytes) {
  return error_of([&] { parse(bytes); });
}

TEST(Gguf, ReadsEveryMetadataTypeGgufPyWrote) {
  GgufFile f = load_gguf(kDir + "tiny.gguf");
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.alignment, 32u);
  EXPECT_EQ(f.get("general.architecture").as_string("a"), "llama");
  EXPECT_EQ(f.get("test.u8").type, GgufValueType::U8);
  EXPECT_EQ(f.get("test.u8").as_int("u8"), 200);
  EXPECT_EQ(f.get("test.i8").as_int("i8"), -100);
  EXPECT_EQ(f.get("test.u16").as_int("u16"), 60000);
  EXPECT_EQ(f.get("test.i16").as_int("i16"), -30000);
  EXPECT_EQ(f.get("test.u32").as_int("u32"), 4000000000);
  EXPECT_EQ(f.get("test.i32").as_int("i32"), -2000000000);
  EXPECT_EQ(f.get("test.f32").type, GgufValueType::F32);
  EXPECT_EQ(f.get("test.f32").as_number("f32"), 0.25);
  EXPECT_EQ(f.get("test.u64").as_int("u64"), (int64_t{1} << 40) + 3);
  EXPECT_EQ(f.get("test.i64").as_int("i64"), -(int64_t{1} << 40) - 3);
  EXPECT_EQ(f.get("test.f64").as_number("f64"), -1.5e300);
  EXPECT_EQ(f.get("test.bool").as_int("bool"), 1);
  EXPECT_EQ(f.get("test.string").as_string("s"), "Grüße, 世界 🙂");
  EXPECT_EQ(f.get("test.strings").as_strings("ss"),
            (std::vector<std::string>{"<s>", "</s>", "hello", ""}));
  const GgufValue& ints = f.get("test.ints");
  ASSERT_EQ(ints.items.size(), 3u);
  EXPECT_EQ(ints.items[1].as_int("ints"), -2);
  EXPECT_EQ(f.get("test.floats").items[1].as_number("floats"), -1.25);
  const GgufValue& nested = f.get("test.nested");
  ASSERT_EQ(nested.array_type, GgufValueType::ARRAY);
  ASSERT_EQ(nested.items.size(), 2u);
  EXPECT_EQ(nested.items[0].items[1].as_int("nested"), 2);
  EXPECT_EQ(f.find("test.missing"), nullptr);
  EXPECT_TRUE(contains(error_of([&] { f.get("test.missing"); }), "no metadata key 'test.missing'"));
  EXPECT_TRUE(contains(error_of([&] { f.get("test.u8").as_string("test.u8"); }), "not a string"));
}

TEST(Gguf, EachTensorTypeDequantizesToGgufPysValues) {
  GgufFile f = load_gguf(kDir + "tiny.gguf");
  SafetensorsFile ref = load_safetensors(kDir + "tiny_reference.safetensors");
  ASSERT_EQ(f.tensors.size(), ref.tensors.size());
  for (const auto& [name, expected] : ref.tensors) {
    SCOPED_TRACE(name);
    Tensor got = f.to_tensor(name);
    EXPECT_EQ(got.shape(), expected.shape());
    Tensor g = got.to(DType::f32).contiguous();
    const float* a = g.data<float>();
    const float* b = expected.data<float>();
    int64_t bad = 0;
    for (int64_t k = 0; k < expected.numel(); ++k) bad += a[k] != b[k];
    EXPECT_EQ(bad, 0) << "of " << expected.numel();
  }
  EXPECT_EQ(f.tensor("q4_k").dims, (std::vector<int64_t>{512, 2}));
  EXPECT_EQ(f.tensor("q4_k").nbytes, 2u * 2 * 144);
  EXPECT_EQ(f.to_tensor("f16").dtype(), DType::f16);  // plain types keep their dtype
  EXPECT_TRUE(contains(error_of([&] { f.tensor("nope"); }), "no tensor named 'nope'"));
}

TEST(Gguf, WhatMoxingWritesReadsBackTheSame) {
  GgufFile f = load_gguf(kDir + "tiny.gguf");
  std::vector<GgufTensorData> tensors;
  for (const GgufTensor& t : f.tensors) {
    tensors.push_back(
        {t.name, t.dims, t.type, std::string(reinterpret_cast<const char*>(t.data), t.nbytes)});
  }
  const std::string bytes = serialize_gguf(f.metadata, tensors);
  // gguf-py writes the same layout: the bytes agree exactly
  EXPECT_EQ(bytes, file_bytes(kDir + "tiny.gguf"));
  GgufFile g = parse(bytes);
  EXPECT_EQ(g.metadata, f.metadata);
  ASSERT_EQ(g.tensors.size(), f.tensors.size());

  TempDir dir("gguf_write");
  Tensor w = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  GgufMetadata meta = {{"general.architecture", GgufValue::of_string("gpt2")},
                       {"general.alignment", GgufValue::of_uint(GgufValueType::U32, 64)},
                       {"tokens", GgufValue::of_strings({"a", "b"})}};
  save_gguf(dir.path + "/m.gguf", meta, {gguf_tensor_data("w", w)});
  GgufFile h = load_gguf(dir.path + "/m.gguf");
  EXPECT_EQ(h.alignment, 64u);
  EXPECT_EQ(h.data_offset % 64, 0u);
  EXPECT_EQ(h.tensor("w").dims, (std::vector<int64_t>{3, 2}));
  Tensor back = h.to_tensor("w");
  EXPECT_EQ(back.shape(), (Shape{2, 3}));
  EXPECT_EQ(back.data<float>()[5], 6.0f);
  EXPECT_EQ(h.get("tokens").as_strings("tokens"), (std::vector<std::string>{"a", "b"}));
}

TEST(Gguf, TruncatedFilesAreErrorsAtEveryLength) {
  const std::string bytes = file_bytes(kDir + "tiny.gguf");
  // every prefix that lacks a byte of a tensor (the padding after the last one is optional)
  GgufFile f = parse(bytes);
  size_t end = 0;
  for (const GgufTensor& t : f.tensors) {
    end = std::max<size_t>(end, f.data_offset + t.offset + t.nbytes);
  }
  ASSERT_GT(end, bytes.size() - 32);
  for (size_t n = 0; n < end; ++n) {
    const std::string e = parse_error(bytes.substr(0, n));
    ASSERT_FALSE(e.empty()) << "a file cut to " << n << " bytes was accepted";
    ASSERT_TRUE(contains(e, "test.gguf")) << e;
  }
}

TEST(Gguf, HostileHeadersAreClearErrors) {
  const std::string good = file_bytes(kDir + "tiny.gguf");
  auto with = [&](size_t at, const void* v, size_t n) {
    std::string b = good;
    std::memcpy(b.data() + at, v, n);
    return b;
  };
  EXPECT_TRUE(contains(parse_error("GGML"), "not a GGUF file"));
  EXPECT_TRUE(contains(parse_error(""), "file is empty"));
  const uint32_t v1 = 1, v9 = 9;
  EXPECT_TRUE(contains(parse_error(with(4, &v1, 4)), "version 1"));
  EXPECT_TRUE(contains(parse_error(with(4, &v9, 4)), "version 9"));
  const uint64_t huge = uint64_t{1} << 60;
  EXPECT_TRUE(contains(parse_error(with(8, &huge, 8)), "tensor infos cannot fit"));
  EXPECT_TRUE(contains(parse_error(with(16, &huge, 8)), "metadata entries cannot fit"));

  // a file built field by field: one key, one tensor
  auto build = [](uint32_t value_type, uint32_t type, uint64_t offset, uint64_t dim0) {
    std::string b;
    auto put32 = [&](uint32_t x) { b.append(reinterpret_cast<const char*>(&x), 4); };
    auto put64 = [&](uint64_t x) { b.append(reinterpret_cast<const char*>(&x), 8); };
    put32(0x46554747);
    put32(3);
    put64(1);
    put64(1);
    put64(1);
    b += "k";
    put32(value_type);
    put32(7);
    put64(1);
    b += "t";
    put32(1);
    put64(dim0);
    put32(type);
    put64(offset);
    b.resize(96, '\0');  // the 74-byte header padded to the alignment
    b.append(256, '\1');
    return b;
  };
  EXPECT_TRUE(parse_error(build(4, 0, 0, 32)).empty());  // the valid one
  EXPECT_TRUE(contains(parse_error(build(13, 0, 0, 32)), "unknown value type 13"));
  EXPECT_TRUE(contains(parse_error(build(4, 99, 0, 32)), "unknown ggml type 99"));
  EXPECT_TRUE(contains(parse_error(build(4, 0, 3, 32)), "not a multiple of the alignment 32"));
  EXPECT_TRUE(contains(parse_error(build(4, 0, 0, 1000)), "runs past the end"));
  EXPECT_TRUE(contains(parse_error(build(4, 2, 0, 33)), "not whole Q4_0 blocks of 32"));
  EXPECT_TRUE(contains(parse_error(build(4, 0, 0, uint64_t{1} << 63)), "dimensions too large"));

  // two tensors sharing bytes
  std::vector<GgufTensorData> two = {{"a", {8}, GgmlType::F32, std::string(32, '\0')},
                                     {"b", {8}, GgmlType::F32, std::string(32, '\0')}};
  std::string overlap = serialize_gguf({}, two);
  const size_t second_offset = overlap.find('b') + 1 + 4 + 8 + 4;
  const uint64_t zero = 0;
  std::memcpy(overlap.data() + second_offset, &zero, 8);
  EXPECT_TRUE(contains(parse_error(overlap), "overlap"));
  // a duplicate tensor name
  two[1].name = "a";
  EXPECT_TRUE(contains(error_of([&] { serialize_gguf({}, two); }), "duplicate tensor name"));
  // a bad general.alignment
  GgufMetadata bad_align = {{"general.alignment", GgufValue::of_uint(GgufValueType::U32, 48)}};
  EXPECT_TRUE(contains(error_of([&] { serialize_gguf(bad_align, {}); }), "not a power of two"));
  EXPECT_TRUE(contains(error_of([&] { load_gguf(kDir + "missing.gguf"); }), "cannot open"));
}

TEST(Gguf, UnreadTypesNameThemselves) {
  std::vector<GgufTensorData> t = {{"q5", {32}, GgmlType::Q5_0, std::string(22, '\0')}};
  GgufFile f = parse(serialize_gguf({}, t));
  const std::string e = error_of([&] { f.to_tensor("q5"); });
  EXPECT_TRUE(contains(e, "'q5' is Q5_0")) << e;
  EXPECT_EQ(ggml_type_name(12), "Q4_K");
  EXPECT_EQ(ggml_type_name(99), "type 99");
}

}  // namespace
