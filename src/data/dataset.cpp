// Dataset helpers: seed derivation, Subset, TensorDataset, random_split.
#include "moxing/data/dataset.h"

#include <cmath>
#include <numeric>

#include "moxing/ops/shape.h"

namespace moxing::data {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t mix_seed(uint64_t a, uint64_t b) { return splitmix64(a ^ splitmix64(b)); }

// Stream 0 of an epoch orders it (see DataLoader::order); stream index + 1 augments example
// `index`.
Generator sample_generator(uint64_t seed, int64_t epoch, int64_t index) {
  return Generator(
      mix_seed(mix_seed(seed, static_cast<uint64_t>(epoch)), static_cast<uint64_t>(index) + 1));
}

int64_t uniform_int(Generator& gen, int64_t n) {
  MOXING_CHECK(n >= 1, "uniform_int: n must be >= 1, got {}", n);
  auto b = gen.block(gen.advance(1));
  uint64_t v = (static_cast<uint64_t>(b[0]) << 32) | b[1];
  return static_cast<int64_t>(v % static_cast<uint64_t>(n));
}

float uniform_float(Generator& gen) { return u32_to_unit_float(gen.block(gen.advance(1))[0]); }

std::vector<int64_t> permutation(int64_t n, Generator& gen) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[uniform_int(gen, i + 1)]);
  return p;
}

Example Dataset::operator[](int64_t index) const {
  Generator gen = sample_generator(0, 0, index);
  return get(index, gen);
}

Subset::Subset(DatasetPtr base, std::vector<int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  MOXING_CHECK(base_ != nullptr, "Subset: null dataset");
  int64_t n = base_->size();
  for (int64_t i : indices_) {
    MOXING_CHECK(i >= 0 && i < n, "Subset: index {} out of range for a dataset of {}", i, n);
  }
}

Example Subset::get(int64_t index, Generator& gen) const {
  MOXING_CHECK(index >= 0 && index < size(), "Subset: index {} out of range for a subset of {}",
               index, size());
  return base_->get(indices_[static_cast<size_t>(index)], gen);
}

TensorDataset::TensorDataset(Tensor inputs, Tensor targets)
    : inputs_(inputs.detach()), targets_(targets.detach()) {
  MOXING_CHECK(inputs_.dim() >= 1 && targets_.dim() >= 1 && inputs_.size(0) == targets_.size(0),
               "TensorDataset: inputs {} and targets {} need the same first dim",
               shape_str(inputs_.shape()), shape_str(targets_.shape()));
}

Example TensorDataset::get(int64_t index, Generator&) const {
  MOXING_CHECK(index >= 0 && index < size(),
               "TensorDataset: index {} out of range for a dataset of {}", index, size());
  return {select(inputs_, 0, index), select(targets_, 0, index)};
}

std::vector<std::shared_ptr<Subset>> random_split(DatasetPtr dataset,
                                                  const std::vector<int64_t>& lengths,
                                                  uint64_t seed) {
  MOXING_CHECK(dataset != nullptr, "random_split: null dataset");
  int64_t total = 0;
  for (int64_t l : lengths) {
    MOXING_CHECK(l >= 0, "random_split: negative length in {}", lengths);
    total += l;
  }
  MOXING_CHECK(total == dataset->size(),
               "random_split: lengths {} sum to {} but the dataset has {} examples", lengths, total,
               dataset->size());
  Generator gen(seed);
  std::vector<int64_t> perm = permutation(total, gen);
  std::vector<std::shared_ptr<Subset>> out;
  auto it = perm.begin();
  for (int64_t l : lengths) {
    out.push_back(std::make_shared<Subset>(dataset, std::vector<int64_t>(it, it + l)));
    it += l;
  }
  return out;
}

std::pair<std::shared_ptr<Subset>, std::shared_ptr<Subset>> train_val_split(DatasetPtr dataset,
                                                                            double val_fraction,
                                                                            uint64_t seed) {
  MOXING_CHECK(dataset != nullptr, "train_val_split: null dataset");
  MOXING_CHECK(val_fraction >= 0.0 && val_fraction < 1.0,
               "train_val_split: val_fraction must be in [0, 1), got {}", val_fraction);
  int64_t n = dataset->size();
  auto n_val = static_cast<int64_t>(std::llround(static_cast<double>(n) * val_fraction));
  auto parts = random_split(dataset, {n - n_val, n_val}, seed);
  return {parts[0], parts[1]};
}

}  // namespace moxing::data
