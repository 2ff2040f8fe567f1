// How a task that goes through its training data in batches splits an epoch into optimizer steps
// of grad_accum micro-batches (the last step of an epoch takes the batches that are left), and,
// for a task that shuffles its items itself, which items a micro-batch holds: a permutation drawn
// from (seed, epoch), so a resumed run sees the batches an uninterrupted one would have seen.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace moxing::train {

class EpochBatches {
 public:
  EpochBatches() = default;
  /// items in batches of batch_size (the last one may be smaller)
  EpochBatches(int64_t items, int64_t batch_size, int64_t grad_accum);
  /// a loader that counts its own batches (items() is not available)
  static EpochBatches of_batches(int64_t batches, int64_t grad_accum);

  int64_t batches() const { return batches_; }
  /// Task::steps_per_epoch and Task::micro_batches
  int64_t steps_per_epoch() const;
  int64_t micro_batches(int64_t step) const;
  int64_t epoch(int64_t step) const;
  /// the batch that micro-batch `micro` of `step` is, counted within its epoch
  int64_t index(int64_t step, int64_t micro) const;
  /// The shuffled items of micro-batch `micro` of `step`: the permutation of the step's epoch
  /// (drawn once per epoch from seed), an error past the data.
  std::span<const int64_t> items(int64_t step, int64_t micro, uint64_t seed);

 private:
  int64_t items_ = 0, batch_size_ = 0, batches_ = 0, grad_accum_ = 1;
  int64_t order_epoch_ = -1;
  uint64_t order_seed_ = 0;
  std::vector<int64_t> order_;
};

}  // namespace moxing::train
