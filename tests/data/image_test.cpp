// Image transforms on small known images, PNG round trips, and ImageFolder on a tree of tiny
// PNGs written here. Resize values come from torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False, antialias=True) on the same inputs.
#include "moxing/data/image.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "moxing/data/dataloader.h"
#include "moxing/data/image_folder.h"
#include "op_harness.h"

using namespace moxing;
using namespace moxing::data;
using moxing::testing::contains;
using moxing::testing::error_of;
namespace fs = std::filesystem;

namespace {

void expect_close(const Tensor& t, const std::vector<float>& expected, float tol = 1e-4f) {
  std::vector<float> v = to_dtype(t, DType::f32).to_vector<float>();
  ASSERT_EQ(v.size(), expected.size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], expected[i], tol) << "element " << i;
}

// float (1,H,W) image from values
Tensor gray(const std::vector<float>& v, int64_t h, int64_t w) {
  return from_vector<float>(v, {1, h, w});
}

}  // namespace

TEST(Transforms, ResizeMatchesTorch) {
  Tensor x = gray({0, 100, 200, 255}, 2, 2);
  Tensor up = apply(Resize(4, 4), x);
  EXPECT_EQ(up.shape(), (Shape{1, 4, 4}));
  expect_close(up, {0, 25, 75, 100, 50, 72.1875f, 116.5625f, 138.75f, 150, 166.5625f, 199.6875f,
                    216.25f, 200, 213.75f, 241.25f, 255});
  expect_close(apply(Resize(3, 5), x), {0, 10, 50, 90, 100, 100, 107.75f, 138.75f, 169.75f, 177.5f,
                                        200, 205.5f, 227.5f, 249.5f, 255});
  std::vector<float> ramp16(16), ramp9(9);
  for (int i = 0; i < 16; ++i) ramp16[static_cast<size_t>(i)] = static_cast<float>(i);
  for (int i = 0; i < 9; ++i) ramp9[static_cast<size_t>(i)] = static_cast<float>(i);
  expect_close(apply(Resize(2, 2), gray(ramp16, 4, 4)),
               {3.571429f, 5.142858f, 9.857143f, 11.428572f});
  expect_close(apply(Resize(2, 2), gray(ramp9, 3, 3)), {1.5f, 2.75f, 5.25f, 6.5f});
  // u8 (H,W,C) stays u8 (H,W,C), rounded; the smaller edge form keeps the aspect ratio
  Tensor u8 = from_vector<uint8_t>({0, 100, 200, 255}, {2, 2, 1});
  Tensor r = apply(Resize(4, 4), u8);
  EXPECT_EQ(r.dtype(), DType::u8);
  EXPECT_EQ(r.shape(), (Shape{4, 4, 1}));
  EXPECT_EQ(r.to_vector<int64_t>()[5], 72);
  EXPECT_EQ(apply(Resize(6), zeros({3, 4, 8})).shape(), (Shape{3, 6, 12}));
}

TEST(Transforms, CropsAndFlip) {
  std::vector<float> v(20);
  for (int i = 0; i < 20; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i);
  Tensor x = gray(v, 4, 5);  // rows 0-4, 5-9, 10-14, 15-19
  expect_close(apply(CenterCrop(2, 3), x), {6, 7, 8, 11, 12, 13});
  // larger than the image: zero padding, floor half before
  expect_close(apply(CenterCrop(2, 7), gray({1, 2, 3, 4}, 2, 2)),
               {0, 0, 1, 2, 0, 0, 0, 0, 0, 3, 4, 0, 0, 0});
  expect_close(apply(CenterCrop(2, 2), gray(v, 4, 5)), {7, 8, 12, 13});  // round(1.5) = 2

  Generator g(3);
  Tensor c = RandomCrop(4, 5, 2)(x, g);
  EXPECT_EQ(c.shape(), (Shape{1, 4, 5}));
  // the crop is the padded image at the drawn offset
  Generator replay(3);
  int64_t top = uniform_int(replay, 5) - 2, left = uniform_int(replay, 5) - 2;
  std::vector<float> expected;
  for (int64_t y = 0; y < 4; ++y)
    for (int64_t xx = 0; xx < 5; ++xx) {
      int64_t sy = top + y, sx = left + xx;
      expected.push_back(sy >= 0 && sy < 4 && sx >= 0 && sx < 5 ? static_cast<float>(sy * 5 + sx)
                                                                : 0.0f);
    }
  expect_close(c, expected);
  expect_close(apply(RandomCrop(4, 5), x), v);  // the whole image: no draw
  EXPECT_TRUE(contains(error_of([&] { apply(RandomCrop(5, 5, 0), x); }),
                       "RandomCrop: crop 5x5 is larger than the padded image 4x5"));

  expect_close(apply(RandomHorizontalFlip(1.0), gray({1, 2, 3, 4, 5, 6}, 2, 3)),
               {3, 2, 1, 6, 5, 4});
  expect_close(apply(RandomHorizontalFlip(0.0), gray({1, 2, 3}, 1, 3)), {1, 2, 3});
  Tensor hwc = from_vector<uint8_t>({1, 2, 3, 4, 5, 6}, {1, 2, 3});  // 2 RGB pixels
  EXPECT_EQ(apply(RandomHorizontalFlip(1.0), hwc).to_vector<int64_t>(),
            (std::vector<int64_t>{4, 5, 6, 1, 2, 3}));
}

TEST(Transforms, ToTensorNormalizeGrayscaleCompose) {
  Tensor hwc = from_vector<uint8_t>({0, 51, 255, 102, 204, 0}, {1, 2, 3});
  Tensor t = apply(ToTensor(), hwc);
  EXPECT_EQ(t.shape(), (Shape{3, 1, 2}));
  expect_close(t, {0, 0.4f, 0.2f, 0.8f, 1, 0});
  expect_close(apply(Normalize({0.5f, 0.5f, 0.0f}, {0.5f, 0.25f, 2.0f}), t),
               {-1, -0.2f, -1.2f, 1.2f, 0.5f, 0});
  expect_close(apply(Grayscale(), t), {0.299f * 0 + 0.587f * 0.2f + 0.114f * 1,
                                       0.299f * 0.4f + 0.587f * 0.8f + 0.114f * 0});
  Tensor g3 = apply(Grayscale(3), hwc);
  EXPECT_EQ(g3.shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(g3.to_vector<int64_t>()[0], 59);  // round(0.587 * 51 + 0.114 * 255)

  Compose pipeline(
      {Resize(2, 4), RandomHorizontalFlip(1.0), ToTensor(), Normalize({0.5f}, {0.5f})});
  Generator gen(0);
  Tensor out = pipeline(hwc, gen);
  EXPECT_EQ(out.shape(), (Shape{3, 2, 4}));
  EXPECT_NEAR(out.to_vector<float>()[0], 102.0f / 255.0f * 2 - 1, 1e-6);  // R of the right pixel

  EXPECT_TRUE(contains(error_of([&] { apply(Normalize({0.5f}, {0.5f}), hwc); }),
                       "Normalize: expected a float (C,H,W) image, got u8 [1, 2, 3]"));
  EXPECT_TRUE(contains(error_of([&] { apply(ToTensor(), t); }),
                       "ToTensor: expected a u8 (H,W,C) or (H,W) image, got f32 [3, 1, 2]"));
  EXPECT_TRUE(contains(error_of([&] {
                         apply(Normalize({0.5f, 0.5f}, {1.0f}), t);
                       }),
                       "2 means and 1 stds for an image of 3 channels"));
}

class ImageFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            fmt::format("moxing_image_folder_test_{}_{}", getpid(),
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A 3x2 RGB PNG whose pixels are all `value`.
  void png(const std::string& rel, uint8_t value) {
    fs::create_directories((root_ / rel).parent_path());
    write_png((root_ / rel).string(), full({3, 2, 3}, value, DType::u8));
  }
  fs::path root_;
};

TEST_F(ImageFolderTest, ClassesFromSortedFolders) {
  png("zebra/b.png", 30);
  png("zebra/a.png", 20);
  png("ant/x.PNG", 10);
  png("cat/sub/y.png", 40);
  std::ofstream(root_ / "cat" / "notes.txt") << "not an image";
  ImageFolder folder(root_.string());
  EXPECT_EQ(folder.classes(), (std::vector<std::string>{"ant", "cat", "zebra"}));
  EXPECT_EQ(folder.class_to_idx().at("zebra"), 2);
  ASSERT_EQ(folder.size(), 4);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 4; ++i) labels.push_back(folder[i].target.item<int64_t>());
  EXPECT_EQ(labels, (std::vector<int64_t>{0, 1, 2, 2}));
  Example ex = folder[2];  // zebra/a.png
  EXPECT_EQ(ex.input.shape(), (Shape{3, 3, 2}));
  EXPECT_FLOAT_EQ(ex.input.to_vector<float>()[0], 20.0f / 255.0f);

  ImageFolder small(root_.string(), Compose({Grayscale(), ToTensor(), Resize(2, 2)}));
  EXPECT_EQ(small[0].input.shape(), (Shape{1, 2, 2}));
  DataLoaderOptions o;
  o.batch_size = 3;
  o.num_workers = 2;
  o.shuffle = true;
  int64_t n = 0;
  for (Batch& b : DataLoader(std::make_shared<ImageFolder>(root_.string()), o).epoch(0)) {
    EXPECT_EQ(b.input.shape()[1], 3);
    n += b.input.size(0);
  }
  EXPECT_EQ(n, 4);
  Tensor back = read_image((root_ / "ant" / "x.PNG").string());
  EXPECT_EQ(back.shape(), (Shape{3, 2, 3}));
  EXPECT_EQ(back.to_vector<int64_t>()[5], 10);
}

TEST_F(ImageFolderTest, Errors) {
  std::string missing = (root_ / "none").string();
  EXPECT_EQ(error_of([&] { ImageFolder f(missing); }),
            "ImageFolder: " + missing + " is not a directory");
  EXPECT_TRUE(contains(error_of([&] { ImageFolder f(root_.string()); }), "no class folders in"));
  fs::create_directories(root_ / "empty");
  png("full/a.png", 1);
  std::string e = error_of([&] { ImageFolder f(root_.string()); });
  EXPECT_TRUE(contains(e, "no images in " + (root_ / "empty").string())) << e;
  fs::remove_all(root_ / "empty");
  std::ofstream(root_ / "full" / "broken.png") << "this is not a png";
  ImageFolder f(root_.string());
  std::string broken = (root_ / "full" / "broken.png").string();
  e = error_of([&] { f[1]; });
  EXPECT_TRUE(contains(e, "cannot decode image " + broken)) << e;
  EXPECT_TRUE(contains(error_of([&] {
                         write_png((root_ / "no" / "dir.png").string(), zeros({2, 2}, DType::u8));
                       }),
                       "write_png: cannot write"));
}
