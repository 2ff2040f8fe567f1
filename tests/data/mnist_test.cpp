// IDX files (plain and gzipped, written here), their errors, MnistDataset on generated files,
// and the real Fashion-MNIST files of Debian's dataset-fashion-mnist when installed.
#include "moxing/data/mnist.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "moxing/data/image_folder.h"
#include "op_harness.h"

using namespace moxing;
using namespace moxing::data;
using moxing::testing::contains;
using moxing::testing::error_of;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<uint8_t>;

// An IDX file: magic 00 00 type ndim, big-endian dims, then payload.
Bytes idx_bytes(uint8_t type, const std::vector<uint32_t>& dims, const Bytes& payload) {
  Bytes b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  }
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

uint32_t crc32_of(const Bytes& data) {
  uint32_t c = 0xFFFFFFFFu;
  for (uint8_t byte : data) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

// A gzip member holding `data` in stored (uncompressed) deflate blocks (RFC 1951/1952).
Bytes gzip_bytes(const Bytes& data) {
  Bytes g = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  size_t pos = 0;
  do {
    size_t n = std::min<size_t>(data.size() - pos, 65535);
    bool last = pos + n == data.size();
    g.push_back(last ? 1 : 0);
    g.push_back(static_cast<uint8_t>(n));
    g.push_back(static_cast<uint8_t>(n >> 8));
    g.push_back(static_cast<uint8_t>(~n));
    g.push_back(static_cast<uint8_t>(~n >> 8));
    g.insert(g.end(), data.begin() + static_cast<long>(pos),
             data.begin() + static_cast<long>(pos + n));
    pos += n;
  } while (pos < data.size());
  uint32_t crc = crc32_of(data), size = static_cast<uint32_t>(data.size());
  for (int s = 0; s < 32; s += 8) g.push_back(static_cast<uint8_t>(crc >> s));
  for (int s = 0; s < 32; s += 8) g.push_back(static_cast<uint8_t>(size >> s));
  return g;
}

class MnistTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            fmt::format("moxing_mnist_test_{}_{}", getpid(),
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string write(const std::string& name, const Bytes& bytes) {
    std::string path = (root_ / name).string();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
    return path;
  }

  // n images of h x w where pixel k of image i is (i * 7 + k) % 256, labels i % 10.
  void write_dataset(const std::string& prefix, uint32_t n, uint32_t h, uint32_t w, bool gz,
                     uint32_t n_labels = 0) {
    Bytes pixels, labels;
    for (uint32_t i = 0; i < n; ++i)
      for (uint32_t k = 0; k < h * w; ++k)
        pixels.push_back(static_cast<uint8_t>((i * 7 + k) % 256));
    if (n_labels == 0) n_labels = n;
    for (uint32_t i = 0; i < n_labels; ++i) labels.push_back(static_cast<uint8_t>(i % 10));
    Bytes img = idx_bytes(0x08, {n, h, w}, pixels), lab = idx_bytes(0x08, {n_labels}, labels);
    std::string ext = gz ? ".gz" : "";
    write(prefix + "-images-idx3-ubyte" + ext, gz ? gzip_bytes(img) : img);
    write(prefix + "-labels-idx1-ubyte" + ext, gz ? gzip_bytes(lab) : lab);
  }

  fs::path root_;
};

}  // namespace

TEST_F(MnistTest, ReadsPlainAndGzippedIdx) {
  Bytes payload = {1, 2, 3, 4, 5, 6};
  for (bool gz : {false, true}) {
    Bytes b = idx_bytes(0x08, {2, 3}, payload);
    Tensor t = read_idx(write(gz ? "a.gz" : "a", gz ? gzip_bytes(b) : b));
    EXPECT_EQ(t.dtype(), DType::u8);
    EXPECT_EQ(t.shape(), (Shape{2, 3}));
    EXPECT_EQ(t.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  }
}

TEST_F(MnistTest, ReadsBigEndianIntsAndFloats) {
  // i32 -2 and 258; f32 1.5 (0x3fc00000)
  Tensor i = read_idx(write("i", idx_bytes(0x0C, {2}, {0xff, 0xff, 0xff, 0xfe, 0, 0, 1, 2})));
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{-2, 258}));
  Tensor f = read_idx(write("f", idx_bytes(0x0D, {1}, {0x3f, 0xc0, 0, 0})));
  EXPECT_EQ(f.dtype(), DType::f32);
  EXPECT_EQ(f.item<float>(), 1.5f);
  Bytes b = idx_bytes(0x08, {1, 2}, {9, 8});
  EXPECT_EQ(parse_idx(b.data(), b.size()).to_vector<int64_t>(), (std::vector<int64_t>{9, 8}));
}

TEST_F(MnistTest, IdxErrorsNameTheFile) {
  std::string missing = (root_ / "nope").string();
  EXPECT_TRUE(contains(error_of([&] { read_idx(missing); }), missing + " not found"));

  std::string bad = write("bad", {0x12, 0x34, 0x08, 0x01, 0, 0, 0, 1, 7});
  std::string e = error_of([&] { read_idx(bad); });
  EXPECT_TRUE(contains(e, bad) && contains(e, "bad IDX magic number 0x12340801")) << e;

  std::string type = write("type", idx_bytes(0x0B, {1}, {0, 1}));
  EXPECT_TRUE(contains(error_of([&] { read_idx(type); }), "unsupported IDX type code 0x0b"));

  for (bool gz : {false, true}) {
    Bytes b = idx_bytes(0x08, {3, 4}, Bytes(10, 1));  // 12 bytes promised, 10 present
    std::string path = write(gz ? "short.gz" : "short", gz ? gzip_bytes(b) : b);
    e = error_of([&] { read_idx(path); });
    EXPECT_TRUE(contains(e, path) && contains(e, "truncated IDX file") && contains(e, "[3, 4]") &&
                contains(e, "10 bytes are present"))
        << e;
  }
  // a gzip stream cut short
  Bytes g = gzip_bytes(idx_bytes(0x08, {100}, Bytes(100, 3)));
  g.resize(g.size() - 30);
  std::string cut = write("cut.gz", g);
  e = error_of([&] { read_idx(cut); });
  EXPECT_TRUE(contains(e, cut) && contains(e, "truncated")) << e;

  std::string extra = write("extra", idx_bytes(0x08, {2}, {1, 2, 3}));
  EXPECT_TRUE(contains(error_of([&] { read_idx(extra); }), "unexpected bytes after the IDX data"));
  Bytes header_only = {0, 0, 8, 3, 0, 0};
  EXPECT_TRUE(contains(error_of([&] { parse_idx(header_only.data(), header_only.size(), "h"); }),
                       "h: truncated IDX header"));
}

TEST_F(MnistTest, DatasetFromGeneratedFiles) {
  write_dataset("train", 5, 4, 3, /*gz=*/true);
  write_dataset("t10k", 2, 4, 3, /*gz=*/false);
  MnistDataset train(root_.string(), true), test(root_.string(), false);
  EXPECT_EQ(train.size(), 5);
  EXPECT_EQ(test.size(), 2);
  Example ex = train[3];
  EXPECT_EQ(ex.input.shape(), (Shape{1, 4, 3}));
  EXPECT_EQ(ex.input.dtype(), DType::f32);
  EXPECT_FLOAT_EQ(ex.input.to_vector<float>()[1], static_cast<float>(3 * 7 + 1) / 255.0f);
  EXPECT_EQ(ex.target.dtype(), DType::i64);
  EXPECT_EQ(ex.target.dim(), 0);
  EXPECT_EQ(ex.target.item<int64_t>(), 3);

  MnistOptions o;
  o.normalize = true;
  o.mean = 0.5f;
  o.std = 0.25f;
  MnistDataset norm(root_.string(), o);
  EXPECT_FLOAT_EQ(norm[3].input.to_vector<float>()[1], ((3 * 7 + 1) / 255.0f - 0.5f) / 0.25f);

  MnistOptions t;
  t.transform = [](const Tensor& img, Generator&) {
    EXPECT_EQ(img.shape(), (Shape{4, 3, 1}));
    return to_dtype(img, DType::f32);
  };
  EXPECT_EQ(MnistDataset(root_.string(), t)[0].input.shape(), (Shape{4, 3, 1}));
}

TEST_F(MnistTest, DatasetErrors) {
  std::string nowhere = (root_ / "absent").string();
  std::string e = error_of([&] { MnistDataset d(nowhere); });
  EXPECT_EQ(e, "Fashion-MNIST not found at " + nowhere +
                   ": install Debian's dataset-fashion-mnist (apt-get install "
                   "dataset-fashion-mnist) or pass --data");
  e = error_of([&] { MnistDataset d(root_.string()); });
  EXPECT_TRUE(contains(e, "(no train-images-idx3-ubyte[.gz])")) << e;

  write_dataset("train", 4, 2, 2, false, /*n_labels=*/3);
  e = error_of([&] { MnistDataset d(root_.string()); });
  EXPECT_TRUE(contains(e, "Fashion-MNIST: 4 images in") && contains(e, "but 3 labels in")) << e;

  MnistOptions o;
  o.name = "MNIST";
  e = error_of([&] { MnistDataset d(nowhere, o); });
  EXPECT_TRUE(contains(e, "MNIST not found at " + nowhere)) << e;
}

TEST_F(MnistTest, ExportsAnImageFolder) {
  write_dataset("train", 12, 4, 3, false);
  MnistDataset d(root_.string());
  std::string out = (root_ / "tree").string();
  std::vector<std::string> names = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
  EXPECT_EQ(export_imagefolder(d, out, names, 11), 11);
  EXPECT_TRUE(fs::exists(fs::path(out) / "a" / "10.png"));
  EXPECT_FALSE(fs::exists(fs::path(out) / "b" / "11.png"));
  ImageFolder folder(out, {}, 1);
  EXPECT_EQ(folder.size(), 11);
  EXPECT_EQ(folder.classes(), names);
  // a/0.png is sorted before a/10.png; both are class 0 and hold image 0 then 10
  EXPECT_EQ(folder[0].target.item<int64_t>(), 0);
  EXPECT_TRUE(moxing::testing::compare(folder[0].input, d[0].input, 0, 0).empty());
  EXPECT_TRUE(moxing::testing::compare(folder[1].input, d[10].input, 0, 0).empty());
  std::vector<std::string> few = {"a"};
  EXPECT_TRUE(contains(error_of([&] { export_imagefolder(d, out, few, 3); }),
                       "example 1 has label 1 but 1 class names were given"));
}

// The real files, when Debian's dataset-fashion-mnist is installed; otherwise the error that
// tells the user how to get them.
TEST(FashionMnist, RealFilesOrTheirError) {
  if (!fs::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz")) {
    EXPECT_TRUE(contains(error_of([] { MnistDataset d(kFashionMnistDir); }),
                         "apt-get install dataset-fashion-mnist"));
    return;
  }
  MnistDataset train(kFashionMnistDir, true), test(kFashionMnistDir, false);
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(train.images().shape(), (Shape{60000, 28, 28}));
  // first labels, as torchvision.datasets.FashionMNIST gives them
  EXPECT_EQ(slice(train.labels(), 0, 0, 5).to_vector<int64_t>(),
            (std::vector<int64_t>{9, 0, 0, 3, 0}));
  EXPECT_EQ(slice(test.labels(), 0, 0, 5).to_vector<int64_t>(),
            (std::vector<int64_t>{9, 2, 1, 1, 6}));
  Tensor x = train[0].input;
  EXPECT_EQ(x.shape(), (Shape{1, 28, 28}));
  EXPECT_GE(x.to_vector<float>()[0], 0.0f);
  EXPECT_EQ(fashion_mnist_classes().size(), 10u);
}
