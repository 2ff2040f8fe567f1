// IDX files and the MNIST-format datasets. IDX: magic 00 00 <type> <ndim>, ndim big-endian
// u32 dims, then the values big-endian, row-major. Files are read through zlib's gzread, which
// also reads uncompressed files, so .gz and plain share one path.
#include "moxing/data/mnist.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>

#include "moxing/ops/shape.h"

namespace fs = std::filesystem;

namespace moxing::data {

namespace {

constexpr int kMaxDims = 8;

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

struct IdxHeader {
  DType dtype;
  Shape shape;
  size_t data_bytes;
};

// The first 4 bytes: checks the magic and returns the number of dims.
int header_ndim(const uint8_t* magic, const std::string& name) {
  if (magic[0] != 0 || magic[1] != 0) {
    fail("{}: bad IDX magic number 0x{:08x} (expected 0x0000TTNN: type code TT, NN dims)", name,
         read_be32(magic));
  }
  int ndim = magic[3];
  MOXING_CHECK(ndim >= 1 && ndim <= kMaxDims, "{}: IDX file with {} dims (1 to {} allowed)", name,
               ndim, kMaxDims);
  return ndim;
}

// Magic and dims (4 + 4 * ndim bytes).
IdxHeader parse_header(const uint8_t* p, const std::string& name) {
  int ndim = header_ndim(p, name);
  IdxHeader h;
  switch (p[2]) {
    case 0x08:
      h.dtype = DType::u8;
      break;
    case 0x0C:
      h.dtype = DType::i32;
      break;
    case 0x0D:
      h.dtype = DType::f32;
      break;
    case 0x0E:
      h.dtype = DType::f64;
      break;
    default:
      fail("{}: unsupported IDX type code 0x{:02x} (u8 0x08, i32 0x0c, f32 0x0d, f64 0x0e)", name,
           p[2]);
  }
  size_t bytes = dtype_size(h.dtype);
  for (int d = 0; d < ndim; ++d) {
    uint32_t n = read_be32(p + 4 + 4 * d);
    h.shape.push_back(n);
    if (n != 0 && bytes > (size_t{1} << 48) / n)
      fail("{}: IDX dims {} are too large", name, h.shape);
    bytes *= n;
  }
  h.data_bytes = bytes;
  return h;
}

// Values are stored big-endian: swap multi-byte elements in place.
Tensor make_tensor(const IdxHeader& h, std::vector<uint8_t>& data) {
  size_t esize = dtype_size(h.dtype);
  if (esize > 1) {
    for (size_t i = 0; i < data.size(); i += esize) std::reverse(&data[i], &data[i] + esize);
  }
  return from_blob_copy(data.data(), h.shape, h.dtype);
}

std::string truncated(const std::string& name, const IdxHeader& h, size_t have) {
  return fmt::format(
      "{}: truncated IDX file: the header says {} {} ({} bytes of data) but {} "
      "bytes are present",
      name, dtype_name(h.dtype), shape_str(h.shape), h.data_bytes, have);
}

// Reads up to n bytes; errors name the file and zlib's reason.
size_t gz_read(gzFile f, uint8_t* dst, size_t n, const std::string& name) {
  size_t done = 0;
  while (done < n) {
    auto want = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 20));
    int got = gzread(f, dst + done, want);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      fail("{}: cannot read: {}", name, msg);
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  if (err != Z_OK && err != Z_STREAM_END) fail("{}: corrupt or truncated gzip data: {}", name, msg);
  return done;
}

}  // namespace

Tensor parse_idx(const uint8_t* bytes, size_t size, const std::string& name) {
  MOXING_CHECK(size >= 4, "{}: truncated IDX file ({} bytes, no header)", name, size);
  int ndim = header_ndim(bytes, name);
  size_t header = 4 + 4 * static_cast<size_t>(ndim);
  MOXING_CHECK(size >= header, "{}: truncated IDX header ({} bytes for {} dims)", name, size, ndim);
  IdxHeader h = parse_header(bytes, name);
  size_t have = size - header;
  if (have < h.data_bytes) throw Error(truncated(name, h, have));
  MOXING_CHECK(have == h.data_bytes, "{}: {} unexpected bytes after the IDX data", name,
               have - h.data_bytes);
  std::vector<uint8_t> data(bytes + header, bytes + size);
  return make_tensor(h, data);
}

Tensor read_idx(const std::string& path) {
  std::error_code ec;
  MOXING_CHECK(fs::is_regular_file(path, ec), "read_idx: {} not found", path);
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), gzclose);
  MOXING_CHECK(f != nullptr, "read_idx: cannot open {}", path);
  uint8_t head[4 + 4 * kMaxDims];
  size_t got = gz_read(f.get(), head, 4, path);
  MOXING_CHECK(got == 4, "{}: truncated IDX file ({} bytes, no header)", path, got);
  int ndim = header_ndim(head, path);
  got = gz_read(f.get(), head + 4, 4 * static_cast<size_t>(ndim), path);
  MOXING_CHECK(got == 4 * static_cast<size_t>(ndim), "{}: truncated IDX header", path);
  IdxHeader h = parse_header(head, path);
  // Grow with what the file really holds, so a lying header cannot make us allocate its size.
  std::vector<uint8_t> data;
  constexpr size_t kChunk = size_t{16} << 20;
  while (data.size() < h.data_bytes) {
    size_t old = data.size();
    size_t step = std::min(kChunk, h.data_bytes - old);
    data.resize(old + step);
    size_t n = gz_read(f.get(), data.data() + old, step, path);
    if (n < step) throw Error(truncated(path, h, old + n));
  }
  uint8_t extra[64];
  size_t more = gz_read(f.get(), extra, sizeof(extra), path);
  MOXING_CHECK(more == 0, "{}: unexpected bytes after the IDX data", path);
  return make_tensor(h, data);
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt_top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle_boot"};
  return names;
}

namespace {

// DIR/base or DIR/base.gz, or a not-found error that says how to get the files.
std::string find_idx(const std::string& dir, const std::string& base, const std::string& name) {
  std::error_code ec;
  for (const std::string& candidate : {base, base + ".gz"}) {
    fs::path p = fs::path(dir) / candidate;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  std::string missing = fs::is_directory(dir, ec) ? fmt::format(" (no {}[.gz])", base) : "";
  if (name == "Fashion-MNIST") {
    fail(
        "Fashion-MNIST not found at {}{}: install Debian's dataset-fashion-mnist (apt-get "
        "install dataset-fashion-mnist) or pass --data",
        dir, missing);
  }
  fail("{} not found at {}{}: expected {}[.gz] there", name, dir, missing, base);
}

}  // namespace

MnistDataset::MnistDataset(const std::string& dir, bool train)
    : MnistDataset(dir, [train] {
        MnistOptions o;
        o.train = train;
        return o;
      }()) {}

MnistDataset::MnistDataset(const std::string& dir, MnistOptions options)
    : options_(std::move(options)) {
  const std::string& name = options_.name;
  std::string prefix = options_.train ? "train" : "t10k";
  std::string images_path = find_idx(dir, prefix + "-images-idx3-ubyte", name);
  std::string labels_path = find_idx(dir, prefix + "-labels-idx1-ubyte", name);
  images_ = read_idx(images_path);
  Tensor labels = read_idx(labels_path);
  MOXING_CHECK(images_.dtype() == DType::u8 && images_.dim() == 3,
               "{}: expected u8 images (N,H,W), got {} {}", images_path,
               dtype_name(images_.dtype()), shape_str(images_.shape()));
  MOXING_CHECK(labels.dtype() == DType::u8 && labels.dim() == 1,
               "{}: expected u8 labels (N), got {} {}", labels_path, dtype_name(labels.dtype()),
               shape_str(labels.shape()));
  MOXING_CHECK(images_.size(0) == labels.size(0), "{}: {} images in {} but {} labels in {}", name,
               images_.size(0), images_path, labels.size(0), labels_path);
  MOXING_CHECK(!options_.normalize || options_.std != 0.0f, "{}: normalize with std 0", name);
  labels_ = to_dtype(labels, DType::i64);
}

Example MnistDataset::get(int64_t index, Generator& gen) const {
  MOXING_CHECK(index >= 0 && index < size(), "{}: index {} out of range for a dataset of {}",
               options_.name, index, size());
  int64_t h = images_.size(1), w = images_.size(2);
  const uint8_t* src = images_.data<uint8_t>() + index * h * w;
  Tensor target = scalar_tensor(static_cast<double>(labels_.data<int64_t>()[index]), DType::i64);
  if (options_.transform) {
    return {options_.transform(from_blob_copy(src, {h, w, 1}, DType::u8), gen), target};
  }
  Tensor input = empty({1, h, w});
  float* dst = input.data<float>();
  float mean = options_.normalize ? options_.mean : 0.0f;
  float std = options_.normalize ? options_.std : 1.0f;
  for (int64_t i = 0; i < h * w; ++i) dst[i] = (static_cast<float>(src[i]) / 255.0f - mean) / std;
  return {input, target};
}

int64_t export_imagefolder(const MnistDataset& dataset, const std::string& out_dir,
                           const std::vector<std::string>& class_names, int64_t limit) {
  int64_t n = limit < 0 ? dataset.size() : std::min(limit, dataset.size());
  for (const auto& c : class_names) fs::create_directories(fs::path(out_dir) / c);
  const Tensor& images = dataset.images();
  const int64_t* labels = dataset.labels().data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t label = labels[i];
    MOXING_CHECK(label >= 0 && label < static_cast<int64_t>(class_names.size()),
                 "export_imagefolder: example {} has label {} but {} class names were given", i,
                 label, class_names.size());
    fs::path file =
        fs::path(out_dir) / class_names[static_cast<size_t>(label)] / fmt::format("{}.png", i);
    write_png(file.string(), images.select(0, i));
  }
  return n;
}

}  // namespace moxing::data
