// MNIST-format datasets (MNIST, Fashion-MNIST): IDX files, plain or gzipped, held in memory
// as u8 images (N,28,28) and labels (N). torchvision.datasets.FashionMNIST without download.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moxing/data/dataset.h"
#include "moxing/data/image.h"

namespace moxing::data {

/// Reads an IDX file (plain or .gz, detected by content): a tensor of the file's shape and type
/// (u8, i32, f32 or f64). Errors name the file: missing, bad magic, truncated, trailing bytes.
Tensor read_idx(const std::string& path);
/// Parses IDX bytes already in memory; `name` is used in errors.
Tensor parse_idx(const uint8_t* bytes, size_t size, const std::string& name = "IDX data");

/// Where Debian's dataset-fashion-mnist package puts the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
/// Fashion-MNIST train-set pixel statistics in [0, 1].
inline constexpr float kFashionMnistMean = 0.2860f;
inline constexpr float kFashionMnistStd = 0.3530f;
/// The ten Fashion-MNIST class names, usable as folder names.
const std::vector<std::string>& fashion_mnist_classes();

struct MnistOptions {
  /// train-*-ubyte (60000 examples) or t10k-*-ubyte (10000).
  bool train = true;
  /// Input (x - mean) / std after scaling to [0, 1].
  bool normalize = false;
  float mean = kFashionMnistMean;
  float std = kFashionMnistStd;
  /// When set, makes the input from the u8 image (28,28,1), replacing scaling and normalize.
  Transform transform = {};
  /// The dataset's name in errors.
  std::string name = "Fashion-MNIST";
};

/// DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. get(i): input f32 (1,28,28) in
/// [0, 1] (or normalized, or transformed), target i64 0-d.
class MnistDataset : public Dataset {
 public:
  explicit MnistDataset(const std::string& dir, bool train = true);
  MnistDataset(const std::string& dir, MnistOptions options);

  int64_t size() const override { return images_.size(0); }
  Example get(int64_t index, Generator& gen) const override;

  /// u8 (N,H,W).
  const Tensor& images() const { return images_; }
  /// i64 (N).
  const Tensor& labels() const { return labels_; }

 private:
  MnistOptions options_;
  Tensor images_, labels_;
};

/// Writes examples [0, limit) (all when limit < 0) as OUT_DIR/<class_names[label]>/<i>.png,
/// an ImageFolder tree. Returns the number written.
int64_t export_imagefolder(const MnistDataset& dataset, const std::string& out_dir,
                           const std::vector<std::string>& class_names, int64_t limit = -1);

}  // namespace moxing::data
