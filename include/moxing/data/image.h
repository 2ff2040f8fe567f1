// Image files (JPEG, PNG, BMP, ... decoded by stb_image; PNG written by stb_image_write) and
// the image transforms of torchvision.transforms. An image is a tensor in one of two layouts:
// u8 (H,W,C) as decoded (what PIL gives torchvision), or floating (C,H,W) after ToTensor.
// Geometric transforms accept both and keep the layout; Normalize needs (C,H,W) floats.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/core/tensor.h"

namespace moxing::data {

/// Decodes an image file into u8 (H,W,C); channels forces C (1 gray, 3 RGB, 4 RGBA), 0 keeps
/// the file's. Errors name the file and the decoder's reason.
Tensor read_image(const std::string& path, int channels = 0);
/// Decodes an image held in memory; `name` is used in errors.
Tensor decode_image(const uint8_t* bytes, size_t size, int channels = 0,
                    const std::string& name = "image");
/// Writes u8 (H,W,C) or (H,W) as a PNG file.
void write_png(const std::string& path, const Tensor& image);
/// The PNG file bytes of u8 (H,W,C) or (H,W), encoded in memory (TensorBoard image summaries).
std::string encode_png(const Tensor& image);
/// Floating images (N,C,H,W) with values in [lo, hi] (clamped) -> one u8 (H',W',C) picture of
/// nrow images per row, `padding` pixels of black around each: torchvision.utils.make_grid
/// with normalize=True, value_range=(lo, hi), then save_image's rounding.
Tensor make_grid(const Tensor& images, int64_t nrow = 8, int64_t padding = 2, double lo = -1.0,
                 double hi = 1.0);

/// A transform maps an image to an image; random ones draw from gen only.
using Transform = std::function<Tensor(const Tensor& image, Generator& gen)>;

/// Applies transforms in order (torchvision.transforms.Compose).
struct Compose {
  std::vector<Transform> transforms;
  explicit Compose(std::vector<Transform> transforms) : transforms(std::move(transforms)) {}
  Tensor operator()(const Tensor& image, Generator& gen) const;
};

/// Bilinear resize to (H,W), antialiased when shrinking; matches
/// torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True)
/// (torchvision Resize), u8 results rounded.
struct Resize {
  int64_t height, width;
  bool smaller_edge = false;  // (size, size) means: smaller edge to size
  Resize(int64_t height, int64_t width) : height(height), width(width) {}
  /// Smaller edge to `size`, keeping the aspect ratio (torchvision Resize(int)).
  explicit Resize(int64_t size) : height(size), width(size), smaller_edge(true) {}
  Tensor operator()(const Tensor& image, Generator& gen) const;
};

/// The central (H,W) region, zero-padded when the image is smaller (torchvision CenterCrop).
struct CenterCrop {
  int64_t height, width;
  CenterCrop(int64_t height, int64_t width) : height(height), width(width) {}
  explicit CenterCrop(int64_t size) : height(size), width(size) {}
  Tensor operator()(const Tensor& image, Generator& gen) const;
};

/// A random (H,W) region after zero padding of `padding` pixels on each side
/// (torchvision RandomCrop(size, padding)).
struct RandomCrop {
  int64_t height, width, padding;
  RandomCrop(int64_t height, int64_t width, int64_t padding = 0)
      : height(height), width(width), padding(padding) {}
  explicit RandomCrop(int64_t size) : height(size), width(size), padding(0) {}
  Tensor operator()(const Tensor& image, Generator& gen) const;
};

/// Mirrors left-right with probability p (torchvision RandomHorizontalFlip).
struct RandomHorizontalFlip {
  double p;
  explicit RandomHorizontalFlip(double p = 0.5) : p(p) {}
  Tensor operator()(const Tensor& image, Generator& gen) const;
};

/// u8 (H,W,C) or (H,W) -> f32 (C,H,W) in [0, 1] (torchvision ToTensor).
struct ToTensor {
  Tensor operator()(const Tensor& image, Generator& gen) const;
};

/// (x - mean[c]) / std[c] on floating (C,H,W); mean and std hold C values or one
/// (torchvision Normalize).
struct Normalize {
  std::vector<float> mean, std;
  Normalize(std::vector<float> mean, std::vector<float> std)
      : mean(std::move(mean)), std(std::move(std)) {}
  Tensor operator()(const Tensor& image, Generator& gen) const;
};

/// Luma 0.299 R + 0.587 G + 0.114 B, repeated to num_output_channels (torchvision Grayscale);
/// a one-channel image is only repeated.
struct Grayscale {
  int64_t num_output_channels;
  explicit Grayscale(int64_t num_output_channels = 1) : num_output_channels(num_output_channels) {}
  Tensor operator()(const Tensor& image, Generator& gen) const;
};

/// Applies a transform with a generator seeded 0 (for transforms that draw nothing).
Tensor apply(const Transform& transform, const Tensor& image);

}  // namespace moxing::data
