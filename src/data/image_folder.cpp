// ImageFolder: lists ROOT/<class>/** once, decodes one image per get().
#include "moxing/data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace fs = std::filesystem;

namespace moxing::data {

namespace {
constexpr const char* kImageExtensions = ".png .jpg .jpeg .bmp .gif .tga .ppm .pgm";
}

bool is_image_file(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  for (const char* e : {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga", ".ppm", ".pgm"}) {
    if (ext == e) return true;
  }
  return false;
}

ImageFolder::ImageFolder(const std::string& root, Transform transform, int channels)
    : root_(root), transform_(std::move(transform)), channels_(channels) {
  MOXING_CHECK(channels >= 1 && channels <= 4, "ImageFolder: channels must be 1..4, got {}",
               channels);
  std::error_code ec;
  MOXING_CHECK(fs::is_directory(root, ec), "ImageFolder: {} is not a directory", root);
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.is_directory()) classes_.push_back(entry.path().filename().string());
  }
  std::sort(classes_.begin(), classes_.end());
  MOXING_CHECK(!classes_.empty(),
               "ImageFolder: no class folders in {} (expected ROOT/<class>/<image>)", root);
  for (size_t k = 0; k < classes_.size(); ++k) {
    auto label = static_cast<int64_t>(k);
    class_to_idx_[classes_[k]] = label;
    fs::path dir = fs::path(root) / classes_[k];
    std::vector<std::string> files;
    for (const auto& entry :
         fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink)) {
      if (entry.is_regular_file() && is_image_file(entry.path().string())) {
        files.push_back(entry.path().string());
      }
    }
    MOXING_CHECK(!files.empty(), "ImageFolder: no images in {} (extensions {})", dir.string(),
                 kImageExtensions);
    std::sort(files.begin(), files.end());
    for (auto& f : files) samples_.emplace_back(std::move(f), label);
  }
}

Example ImageFolder::get(int64_t index, Generator& gen) const {
  MOXING_CHECK(index >= 0 && index < size(),
               "ImageFolder: index {} out of range for a dataset of {}", index, size());
  const auto& [path, label] = samples_[static_cast<size_t>(index)];
  Tensor image = read_image(path, channels_);
  Tensor input = transform_ ? transform_(image, gen) : ToTensor()(image, gen);
  return {input, scalar_tensor(static_cast<double>(label), DType::i64)};
}

}  // namespace moxing::data
