// The "image-classification" task: a dataset of images and class labels ([data] name
// "fashion-mnist" or "imagefolder"), a model mapping inputs (B,C,H,W) to logits (B,K) (any
// family whose module is an nn::UnaryModule, e.g. mlp or cnn), cross-entropy, and accuracy,
// precision, recall, F1 and ROC-AUC.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moxing/data/dataset.h"
#include "moxing/data/image.h"
#include "moxing/nn/module.h"
#include "moxing/train/config.h"
#include "moxing/train/metrics.h"

namespace moxing::train {

/// The [data] keys of "fashion-mnist" (path defaults to /usr/share/datasets/fashion-mnist).
struct FashionMnistOptions {
  bool normalize = true;  ///< (x - mean) / std with the data set's mean and std

  template <class F>
  void visit(F&& f) {
    f("normalize", normalize);
  }
};

/// The [data] keys of "imagefolder" (path/<class>/<image>, or path/train and path/test when
/// path/train exists).
struct ImageFolderOptions {
  int64_t image_size = 28;  ///< images are resized to image_size x image_size
  int64_t channels = 1;     ///< 1 (gray) or 3 (RGB)
  bool normalize = true;    ///< (x - 0.5) / 0.5

  template <class F>
  void visit(F&& f) {
    f("image_size", image_size);
    f("channels", channels);
    f("normalize", normalize);
  }
};

/// The image keys of the config's source, checked: fashion-mnist's are 28 x 28 gray images.
ImageFolderOptions image_options(const DataConfig& config);

/// The datasets of a run: examples are (input (C,H,W) f32, class i64 0-d). val and test may
/// be null.
struct DataSplits {
  data::DatasetPtr train, val, test;
  int64_t channels = 1, image_size = 28, num_classes = 10;
  std::vector<std::string> class_names;
};

/// The splits [data] names: train/val from the training files (val_fraction, split with
/// [train] seed), test from the test files when there are some.
DataSplits load_data(const Config& config);

/// The transform that turns a decoded u8 (H,W,C) image into a model input (C,H,W) as the
/// config's dataset does (resize, to [0, 1], normalize): what `moxing predict` applies.
data::Transform input_transform(const DataConfig& config);

/// Loss (mean cross-entropy) and classification metrics of model on a dataset, in eval mode
/// without gradients.
struct EvalResult {
  double loss = 0;
  ClassificationReport report;
};
EvalResult evaluate(nn::UnaryModule& model, const data::DatasetPtr& dataset, int64_t batch_size,
                    int64_t num_classes, int64_t num_workers = 0);

class Task;
/// The image-classification task over given splits instead of the ones [data] names (for data
/// a program builds itself); data.channels, image_size, num_classes describe the inputs.
std::unique_ptr<Task> make_image_classification_task(const Config& config, DataSplits data);

}  // namespace moxing::train
