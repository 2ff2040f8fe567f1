// Image decode/encode through stb, and the torchvision-style transforms. Transforms work on a
// planar float copy (C,H,W) of the image and convert back to the input's layout and dtype, so
// one loop serves u8 (H,W,C) and float (C,H,W) images.
#include "moxing/data/image.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "moxing/data/dataset.h"
#include "moxing/ops/shape.h"

namespace moxing::data {

Tensor decode_image(const uint8_t* bytes, size_t size, int channels, const std::string& name) {
  MOXING_CHECK(channels >= 0 && channels <= 4, "decode_image: channels must be 0..4, got {}",
               channels);
  MOXING_CHECK(size <= static_cast<size_t>(INT32_MAX), "decode_image: {} is too large ({} bytes)",
               name, size);
  int w = 0, h = 0, n = 0;
  uint8_t* pixels = stbi_load_from_memory(bytes, static_cast<int>(size), &w, &h, &n, channels);
  if (pixels == nullptr) fail("cannot decode image {}: {}", name, stbi_failure_reason());
  int c = channels != 0 ? channels : n;
  Tensor out = from_blob_copy(pixels, {h, w, c}, DType::u8);
  stbi_image_free(pixels);
  return out;
}

Tensor read_image(const std::string& path, int channels) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open image {}", path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) fail("cannot read image {}", path);
  return decode_image(bytes.data(), bytes.size(), channels, path);
}

namespace {

// The u8 (H,W,C) or (H,W) image as (contiguous data, h, w, c), checked for op.
struct PngInput {
  Tensor data;
  int h = 0, w = 0, c = 0;
};
PngInput png_input(const Tensor& image, const char* op) {
  MOXING_CHECK(image.dtype() == DType::u8 && (image.dim() == 2 || image.dim() == 3),
               "{}: expected a u8 (H,W,C) or (H,W) image, got {} {}", op, dtype_name(image.dtype()),
               shape_str(image.shape()));
  PngInput in;
  in.h = static_cast<int>(image.size(0));
  in.w = static_cast<int>(image.size(1));
  in.c = image.dim() == 3 ? static_cast<int>(image.size(2)) : 1;
  MOXING_CHECK(in.c >= 1 && in.c <= 4, "{}: {} channels (1 to 4 allowed)", op, in.c);
  in.data = contiguous(image);
  return in;
}

void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                             static_cast<size_t>(size));
}

}  // namespace

void write_png(const std::string& path, const Tensor& image) {
  PngInput in = png_input(image, "write_png");
  if (stbi_write_png(path.c_str(), in.w, in.h, in.c, in.data.raw_data(), in.w * in.c) == 0) {
    fail("write_png: cannot write {}", path);
  }
}

std::string encode_png(const Tensor& image) {
  PngInput in = png_input(image, "encode_png");
  std::string out;
  if (stbi_write_png_to_func(append_bytes, &out, in.w, in.h, in.c, in.data.raw_data(),
                             in.w * in.c) == 0) {
    fail("encode_png: cannot encode a {}x{}x{} image", in.h, in.w, in.c);
  }
  return out;
}

Tensor make_grid(const Tensor& images, int64_t nrow, int64_t padding, double lo, double hi) {
  MOXING_CHECK(images.dim() == 4 && images.size(0) > 0 && is_floating(images.dtype()),
               "make_grid: expected floating images (N,C,H,W) with N > 0, got {} {}",
               dtype_name(images.dtype()), shape_str(images.shape()));
  MOXING_CHECK(nrow > 0 && padding >= 0 && hi > lo,
               "make_grid: needs nrow > 0, padding >= 0 and hi > lo, got {}, {}, [{}, {}]", nrow,
               padding, lo, hi);
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  const int64_t cols = std::min(n, nrow), rows = (n + cols - 1) / cols;
  const int64_t gh = rows * (h + padding) + padding, gw = cols * (w + padding) + padding;
  Tensor src = contiguous(images.to(DType::f32));
  const float* x = src.data<float>();
  Tensor out = zeros({gh, gw, c}, DType::u8);
  uint8_t* o = out.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y0 = (i / cols) * (h + padding) + padding,
                  x0 = (i % cols) * (w + padding) + padding;
    for (int64_t ci = 0; ci < c; ++ci) {
      for (int64_t y = 0; y < h; ++y) {
        for (int64_t xx = 0; xx < w; ++xx) {
          double v = (x[((i * c + ci) * h + y) * w + xx] - lo) / (hi - lo);
          v = std::clamp(v, 0.0, 1.0);
          // save_image: x * 255 + 0.5, clamped, truncated
          o[((y0 + y) * gw + x0 + xx) * c + ci] = static_cast<uint8_t>(v * 255.0 + 0.5);
        }
      }
    }
  }
  return out;
}

namespace {

// An image as planar floats, with how to give it back in the input's form.
struct Planar {
  int64_t c = 0, h = 0, w = 0;
  std::vector<float> v;
  float& at(int64_t ci, int64_t y, int64_t x) {
    return v[static_cast<size_t>((ci * h + y) * w + x)];
  }
  float at(int64_t ci, int64_t y, int64_t x) const {
    return v[static_cast<size_t>((ci * h + y) * w + x)];
  }
  static Planar zeros(int64_t c, int64_t h, int64_t w) {
    return {c, h, w, std::vector<float>(static_cast<size_t>(c * h * w), 0.0f)};
  }
};

bool is_float(DType t) { return t == DType::f32 || t == DType::f64; }

// u8 (H,W,C) / (H,W), or float (C,H,W) / (H,W).
Planar to_planar(const Tensor& img, const char* op) {
  bool ok =
      (img.dtype() == DType::u8 || is_float(img.dtype())) && (img.dim() == 2 || img.dim() == 3);
  MOXING_CHECK(ok, "{}: expected a u8 (H,W,C) or float (C,H,W) image, got {} {}", op,
               dtype_name(img.dtype()), shape_str(img.shape()));
  Planar p;
  if (img.dtype() == DType::u8) {
    p.h = img.size(0);
    p.w = img.size(1);
    p.c = img.dim() == 3 ? img.size(2) : 1;
    p.v.resize(static_cast<size_t>(p.c * p.h * p.w));
    Tensor t = contiguous(img);
    const uint8_t* src = t.data<uint8_t>();
    for (int64_t y = 0; y < p.h; ++y)
      for (int64_t x = 0; x < p.w; ++x)
        for (int64_t ci = 0; ci < p.c; ++ci) p.at(ci, y, x) = src[(y * p.w + x) * p.c + ci];
  } else {
    p.c = img.dim() == 3 ? img.size(0) : 1;
    p.h = img.size(-2);
    p.w = img.size(-1);
    Tensor t = contiguous(to_dtype(img, DType::f32));
    p.v.assign(t.data<float>(), t.data<float>() + t.numel());
  }
  return p;
}

// Back to the layout and dtype of `like` (u8 values rounded and clamped to [0, 255]).
Tensor from_planar(const Planar& p, const Tensor& like) {
  bool keep_2d = like.dim() == 2 && p.c == 1;
  if (like.dtype() == DType::u8) {
    Tensor out = keep_2d ? empty({p.h, p.w}, DType::u8) : empty({p.h, p.w, p.c}, DType::u8);
    uint8_t* dst = out.data<uint8_t>();
    for (int64_t y = 0; y < p.h; ++y)
      for (int64_t x = 0; x < p.w; ++x)
        for (int64_t ci = 0; ci < p.c; ++ci) {
          float v = std::nearbyint(p.at(ci, y, x));
          dst[(y * p.w + x) * p.c + ci] = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
        }
    return out;
  }
  Shape shape = keep_2d ? Shape{p.h, p.w} : Shape{p.c, p.h, p.w};
  return to_dtype(from_blob_copy(p.v.data(), shape, DType::f32), like.dtype());
}

// Region [top, top+h) x [left, left+w) of p; pixels outside p are 0.
Planar crop(const Planar& p, int64_t top, int64_t left, int64_t h, int64_t w) {
  Planar out = Planar::zeros(p.c, h, w);
  for (int64_t ci = 0; ci < p.c; ++ci)
    for (int64_t y = 0; y < h; ++y) {
      int64_t sy = top + y;
      if (sy < 0 || sy >= p.h) continue;
      for (int64_t x = 0; x < w; ++x) {
        int64_t sx = left + x;
        if (sx >= 0 && sx < p.w) out.at(ci, y, x) = p.at(ci, sy, sx);
      }
    }
  return out;
}

// Antialiased bilinear (triangle filter widened by the shrink factor) weights for resizing
// n_in samples to n_out, as ATen's _compute_indices_min_size_weights_aa with
// align_corners=False: output i reads inputs [first[i], first[i] + weights[i].size()).
struct ResizeWeights {
  std::vector<int64_t> first;
  std::vector<std::vector<float>> weights;
};

ResizeWeights resize_weights(int64_t n_in, int64_t n_out) {
  ResizeWeights rw;
  double scale = static_cast<double>(n_in) / static_cast<double>(n_out);
  double support = scale >= 1.0 ? scale : 1.0;
  double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  for (int64_t i = 0; i < n_out; ++i) {
    double center = scale * (static_cast<double>(i) + 0.5);
    int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), n_in);
    std::vector<float> w;
    double total = 0.0;
    for (int64_t j = lo; j < hi; ++j) {
      double d = std::abs((static_cast<double>(j) - center + 0.5) * invscale);
      double wj = d < 1.0 ? 1.0 - d : 0.0;
      w.push_back(static_cast<float>(wj));
      total += wj;
    }
    for (float& x : w) x = total > 0.0 ? static_cast<float>(x / total) : 0.0f;
    rw.first.push_back(lo);
    rw.weights.push_back(std::move(w));
  }
  return rw;
}

}  // namespace

Tensor Compose::operator()(const Tensor& image, Generator& gen) const {
  Tensor x = image;
  for (const Transform& t : transforms) x = t(x, gen);
  return x;
}

Tensor apply(const Transform& transform, const Tensor& image) {
  Generator gen(0);
  return transform(image, gen);
}

// y[c,i,j] = sum_a sum_b wy[i][a] wx[j][b] x[c, fy[i]+a, fx[j]+b], rows first then columns.
Tensor Resize::operator()(const Tensor& image, Generator&) const {
  Planar p = to_planar(image, "Resize");
  int64_t oh = height, ow = width;
  if (smaller_edge) {
    if (p.h <= p.w) {
      ow = static_cast<int64_t>(static_cast<double>(height) * p.w / p.h);
    } else {
      oh = static_cast<int64_t>(static_cast<double>(width) * p.h / p.w);
    }
  }
  MOXING_CHECK(oh >= 1 && ow >= 1 && p.h >= 1 && p.w >= 1,
               "Resize: cannot resize an image of {}x{} to {}x{}", p.h, p.w, oh, ow);
  ResizeWeights wx = resize_weights(p.w, ow), wy = resize_weights(p.h, oh);
  Planar rows = Planar::zeros(p.c, p.h, ow);
  for (int64_t ci = 0; ci < p.c; ++ci)
    for (int64_t y = 0; y < p.h; ++y)
      for (int64_t x = 0; x < ow; ++x) {
        float acc = 0.0f;
        const auto& w = wx.weights[static_cast<size_t>(x)];
        for (size_t k = 0; k < w.size(); ++k)
          acc += w[k] * p.at(ci, y, wx.first[x] + static_cast<int64_t>(k));
        rows.at(ci, y, x) = acc;
      }
  Planar out = Planar::zeros(p.c, oh, ow);
  for (int64_t ci = 0; ci < p.c; ++ci)
    for (int64_t y = 0; y < oh; ++y) {
      const auto& w = wy.weights[static_cast<size_t>(y)];
      for (int64_t x = 0; x < ow; ++x) {
        float acc = 0.0f;
        for (size_t k = 0; k < w.size(); ++k)
          acc += w[k] * rows.at(ci, wy.first[y] + static_cast<int64_t>(k), x);
        out.at(ci, y, x) = acc;
      }
    }
  return from_planar(out, image);
}

// torchvision's rule: a larger crop pads (floor half before), a smaller one starts at
// round((size - crop) / 2), rounding half to even as Python's round.
Tensor CenterCrop::operator()(const Tensor& image, Generator&) const {
  MOXING_CHECK(height >= 1 && width >= 1, "CenterCrop: size must be positive, got {}x{}", height,
               width);
  Planar p = to_planar(image, "CenterCrop");
  auto start = [](int64_t size, int64_t crop) {
    if (crop > size) return -((crop - size) / 2);
    return static_cast<int64_t>(std::nearbyint(static_cast<double>(size - crop) / 2.0));
  };
  return from_planar(crop(p, start(p.h, height), start(p.w, width), height, width), image);
}

Tensor RandomCrop::operator()(const Tensor& image, Generator& gen) const {
  MOXING_CHECK(height >= 1 && width >= 1 && padding >= 0,
               "RandomCrop: size must be positive and padding >= 0, got {}x{} padding {}", height,
               width, padding);
  Planar p = to_planar(image, "RandomCrop");
  int64_t ph = p.h + 2 * padding, pw = p.w + 2 * padding;
  MOXING_CHECK(height <= ph && width <= pw,
               "RandomCrop: crop {}x{} is larger than the padded image {}x{}", height, width, ph,
               pw);
  int64_t top = 0, left = 0;
  if (height != ph || width != pw) {
    top = uniform_int(gen, ph - height + 1);
    left = uniform_int(gen, pw - width + 1);
  }
  return from_planar(crop(p, top - padding, left - padding, height, width), image);
}

Tensor RandomHorizontalFlip::operator()(const Tensor& image, Generator& gen) const {
  bool flip = uniform_float(gen) < p;
  Planar img = to_planar(image, "RandomHorizontalFlip");
  if (!flip) return image;
  for (int64_t ci = 0; ci < img.c; ++ci)
    for (int64_t y = 0; y < img.h; ++y) {
      float* row = &img.at(ci, y, 0);
      std::reverse(row, row + img.w);
    }
  return from_planar(img, image);
}

Tensor ToTensor::operator()(const Tensor& image, Generator&) const {
  MOXING_CHECK(image.dtype() == DType::u8 && (image.dim() == 2 || image.dim() == 3),
               "ToTensor: expected a u8 (H,W,C) or (H,W) image, got {} {}",
               dtype_name(image.dtype()), shape_str(image.shape()));
  Planar p = to_planar(image, "ToTensor");
  for (float& v : p.v) v /= 255.0f;
  return from_blob_copy(p.v.data(), {p.c, p.h, p.w}, DType::f32);
}

Tensor Normalize::operator()(const Tensor& image, Generator&) const {
  MOXING_CHECK(is_float(image.dtype()) && image.dim() == 3,
               "Normalize: expected a float (C,H,W) image, got {} {} (apply ToTensor first)",
               dtype_name(image.dtype()), shape_str(image.shape()));
  Planar p = to_planar(image, "Normalize");
  auto channels = static_cast<size_t>(p.c);
  MOXING_CHECK(
      (mean.size() == 1 || mean.size() == channels) && (std.size() == 1 || std.size() == channels),
      "Normalize: {} means and {} stds for an image of {} channels", mean.size(), std.size(), p.c);
  for (int64_t ci = 0; ci < p.c; ++ci) {
    float m = mean.size() == 1 ? mean[0] : mean[static_cast<size_t>(ci)];
    float s = std.size() == 1 ? std[0] : std[static_cast<size_t>(ci)];
    MOXING_CHECK(s != 0.0f, "Normalize: std of channel {} is 0", ci);
    for (int64_t y = 0; y < p.h; ++y)
      for (int64_t x = 0; x < p.w; ++x) p.at(ci, y, x) = (p.at(ci, y, x) - m) / s;
  }
  return from_planar(p, image);
}

Tensor Grayscale::operator()(const Tensor& image, Generator&) const {
  Planar p = to_planar(image, "Grayscale");
  MOXING_CHECK(num_output_channels >= 1, "Grayscale: num_output_channels must be >= 1, got {}",
               num_output_channels);
  MOXING_CHECK(p.c == 1 || p.c == 3, "Grayscale: expected a 1- or 3-channel image, got {} channels",
               p.c);
  Planar out = Planar::zeros(num_output_channels, p.h, p.w);
  for (int64_t y = 0; y < p.h; ++y)
    for (int64_t x = 0; x < p.w; ++x) {
      float l = p.c == 1 ? p.at(0, y, x)
                         : 0.299f * p.at(0, y, x) + 0.587f * p.at(1, y, x) + 0.114f * p.at(2, y, x);
      for (int64_t ci = 0; ci < num_output_channels; ++ci) out.at(ci, y, x) = l;
    }
  Tensor like = image;
  if (image.dim() == 2 && num_output_channels > 1) {
    like = image.dtype() == DType::u8 ? empty({p.h, p.w, 1}, DType::u8)
                                      : empty({1, p.h, p.w}, image.dtype());
  }
  return from_planar(out, like);
}

}  // namespace moxing::data
