#include "moxing/train/epoch_batches.h"

#include <algorithm>

#include "moxing/core/error.h"
#include "moxing/core/rng.h"
#include "moxing/data/dataset.h"

namespace moxing::train {

EpochBatches::EpochBatches(int64_t items, int64_t batch_size, int64_t grad_accum)
    : items_(items),
      batch_size_(batch_size),
      batches_(batch_size > 0 ? (items + batch_size - 1) / batch_size : 0),
      grad_accum_(std::max<int64_t>(1, grad_accum)) {}

EpochBatches EpochBatches::of_batches(int64_t batches, int64_t grad_accum) {
  EpochBatches b;
  b.batches_ = batches;
  b.grad_accum_ = std::max<int64_t>(1, grad_accum);
  return b;
}

int64_t EpochBatches::steps_per_epoch() const { return (batches_ + grad_accum_ - 1) / grad_accum_; }

int64_t EpochBatches::micro_batches(int64_t step) const {
  const int64_t first = index(step, 0);
  return std::min(grad_accum_, batches_ - first);
}

int64_t EpochBatches::epoch(int64_t step) const {
  return step / std::max<int64_t>(1, steps_per_epoch());
}

int64_t EpochBatches::index(int64_t step, int64_t micro) const {
  return (step % std::max<int64_t>(1, steps_per_epoch())) * grad_accum_ + micro;
}

std::span<const int64_t> EpochBatches::items(int64_t step, int64_t micro, uint64_t seed) {
  MOXING_CHECK(batch_size_ > 0, "EpochBatches::items: the batches were counted by a loader");
  const int64_t e = epoch(step), i = index(step, micro);
  if (order_epoch_ != e || order_seed_ != seed) {
    Generator gen(data::mix_seed(data::mix_seed(seed, static_cast<uint64_t>(e)), 0));
    order_ = data::permutation(items_, gen);
    order_epoch_ = e;
    order_seed_ = seed;
  }
  const int64_t first = i * batch_size_;
  MOXING_CHECK(first < items_, "train: batch {} of epoch {} is past the data", i, e + 1);
  return {order_.data() + first, static_cast<size_t>(std::min(batch_size_, items_ - first))};
}

}  // namespace moxing::train
