// Datasets with random access (torch.utils.data.Dataset): size() and get(i) -> Example.
// A dataset never shuffles or batches; DataLoader does. Random augmentation draws from the
// per-sample generator that get() receives, so an example depends only on (seed, epoch, i).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/core/tensor.h"

namespace moxing::data {

/// One example: the model input and its target (a class index is a 0-d i64 tensor).
struct Example {
  Tensor input;
  Tensor target;
};

/// Random-access dataset. get() must be safe to call from several threads at once.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of examples.
  virtual int64_t size() const = 0;
  /// Example `index` in [0, size()); random transforms draw from `gen` only.
  virtual Example get(int64_t index, Generator& gen) const = 0;
  /// Example `index` with the generator of (seed 0, epoch 0, index): for inspection.
  Example operator[](int64_t index) const;
};

using DatasetPtr = std::shared_ptr<const Dataset>;

/// The generator a DataLoader hands to get(index) in an epoch: a Philox stream whose seed
/// mixes (seed, epoch, index), so augmentation is the same whatever the worker count.
Generator sample_generator(uint64_t seed, int64_t epoch, int64_t index);
/// splitmix64 of a ^ golden-ratio-spread b: the seed derivation used throughout data/.
uint64_t mix_seed(uint64_t a, uint64_t b);

/// Examples `indices` of another dataset, in that order (torch.utils.data.Subset).
class Subset : public Dataset {
 public:
  Subset(DatasetPtr base, std::vector<int64_t> indices);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Example get(int64_t index, Generator& gen) const override;
  const std::vector<int64_t>& indices() const { return indices_; }
  const DatasetPtr& base() const { return base_; }

 private:
  DatasetPtr base_;
  std::vector<int64_t> indices_;
};

/// Rows of two tensors: example i is (inputs[i], targets[i]) (torch TensorDataset).
class TensorDataset : public Dataset {
 public:
  /// inputs (N,...), targets (N,...): the same N.
  TensorDataset(Tensor inputs, Tensor targets);
  int64_t size() const override { return inputs_.size(0); }
  Example get(int64_t index, Generator& gen) const override;

 private:
  Tensor inputs_, targets_;
};

/// Splits a dataset into disjoint random subsets of the given lengths (summing to size()),
/// as torch.utils.data.random_split; the permutation depends only on seed.
std::vector<std::shared_ptr<Subset>> random_split(DatasetPtr dataset,
                                                  const std::vector<int64_t>& lengths,
                                                  uint64_t seed);
/// (train, validation) with round(size * val_fraction) validation examples, val_fraction in
/// [0, 1).
std::pair<std::shared_ptr<Subset>, std::shared_ptr<Subset>> train_val_split(DatasetPtr dataset,
                                                                            double val_fraction,
                                                                            uint64_t seed);
/// A permutation of 0..n-1 (Fisher-Yates) drawn from gen.
std::vector<int64_t> permutation(int64_t n, Generator& gen);
/// Uniform integer in [0, n) from gen (n >= 1).
int64_t uniform_int(Generator& gen, int64_t n);
/// Uniform float in [0, 1) from gen.
float uniform_float(Generator& gen);

}  // namespace moxing::data
