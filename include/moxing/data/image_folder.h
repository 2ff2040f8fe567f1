// ImageFolder: ROOT/<class>/<image>, one folder per class (torchvision.datasets.ImageFolder).
// Class folders sorted by name give class indices 0..K-1; images are listed once at
// construction (sorted by name) and decoded in get().
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "moxing/data/dataset.h"
#include "moxing/data/image.h"

namespace moxing::data {

class ImageFolder : public Dataset {
 public:
  /// Lists ROOT. Images decode to `channels` channels (3: RGB, as torchvision's loader; 1:
  /// gray), then `transform` (default ToTensor) makes the input; the target is the class (i64).
  explicit ImageFolder(const std::string& root, Transform transform = {}, int channels = 3);

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  Example get(int64_t index, Generator& gen) const override;

  /// Class names, sorted; classes()[k] is class k.
  const std::vector<std::string>& classes() const { return classes_; }
  const std::map<std::string, int64_t>& class_to_idx() const { return class_to_idx_; }
  /// (path, class) for every image.
  const std::vector<std::pair<std::string, int64_t>>& samples() const { return samples_; }

 private:
  std::string root_;
  Transform transform_;
  int channels_;
  std::vector<std::string> classes_;
  std::map<std::string, int64_t> class_to_idx_;
  std::vector<std::pair<std::string, int64_t>> samples_;
};

/// True for the file extensions ImageFolder reads (.png .jpg .jpeg .bmp .gif .tga .ppm .pgm),
/// case-insensitive.
bool is_image_file(const std::string& path);

}  // namespace moxing::data
