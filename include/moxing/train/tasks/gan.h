// The "gan" task: adversarial training of an image generator against a discriminator (any
// family whose architectures are a models::ImageGenerator and a models::ImageDiscriminator, e.g.
// dcgan) on Fashion-MNIST images scaled to [-1, 1]; two models, two optimizers from [optim],
// updated in two phases (discriminator, then generator) by the one loop. Also the
// classifier-based Inception Score that `moxing sample --classifier` reports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/core/tensor.h"
#include "moxing/models/dcgan.h"
#include "moxing/nn/module.h"
#include "moxing/train/config.h"
#include "moxing/train/task.h"

namespace moxing::train {

/// The [data] keys of "fashion-mnist" under the gan task (path defaults to
/// /usr/share/datasets/fashion-mnist; any folder of IDX files of that layout, such as MNIST,
/// works). Images are always scaled to [-1, 1], the generator's tanh range, so there is no
/// normalize key.
struct GanDataOptions {
  /// Seed of the fixed latent vectors of samples/epoch-N.png (the same grid every epoch).
  int64_t sample_seed = 0;
  /// Latent vectors in that grid (8 per row).
  int64_t num_samples = 64;

  template <class F>
  void visit(F&& f) {
    f("sample_seed", sample_seed);
    f("num_samples", num_samples);
  }
};

/// Latent vectors z (n,nz) ~ N(0, 1) drawn from seed alone: `moxing sample --seed` and the
/// fixed noise of the per-epoch grids.
Tensor latent_noise(int64_t n, int64_t nz, uint64_t seed);

/// Images (n,C,H,W) in [-1, 1] from a generator in eval mode, without gradients, made in
/// batches of at most batch_size from latent_noise(n, nz, seed).
Tensor sample_images(models::ImageGenerator& generator, int64_t n, uint64_t seed,
                     int64_t batch_size = 500);

/// A classifier-based Inception Score: exp(E_x KL(p(y|x) || p(y))) with p(y) the mean of
/// p(y|x) over the images (Salimans et al. 2016, with a task classifier in place of Inception).
struct InceptionScore {
  int64_t samples = 0;
  double score = 0;       ///< over all the samples at once
  double split_mean = 0;  ///< mean and standard deviation over `splits` equal parts
  double split_std = 0;   ///< (the usual report); 0 with one split
  int64_t splits = 1;
  std::vector<int64_t> histogram;  ///< images per argmax class (mode coverage)
};
/// The score of class probabilities p(y|x) (N,K) (rows sum to 1).
InceptionScore inception_score(const Tensor& probs, int64_t splits = 10);

/// An image classifier trained by `moxing train` (a run or model folder of the
/// image-classification task, e.g. examples/cnn-fashion-mnist.toml), with the input scaling of
/// its training data: images in [-1, 1] are mapped to [0, 1] and normalized as its [data] says.
class ImageClassifierScorer {
 public:
  explicit ImageClassifierScorer(const std::string& path);
  /// p(y|x) (N,K) of images (N,C,H,W) in [-1, 1] (eval mode, no gradients, batches of 1000).
  Tensor probs(const Tensor& images);
  /// p(y|x) (N,K) of the classifier's own test split, scaled by its own loader; the error says
  /// when its data has no test split.
  Tensor test_probs();
  const std::vector<std::string>& class_names() const { return class_names_; }

 private:
  LoadedRun run_;
  nn::UnaryModule* model_ = nullptr;
  std::vector<std::string> class_names_;
};

}  // namespace moxing::train
