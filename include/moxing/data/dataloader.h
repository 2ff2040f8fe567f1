// DataLoader: batches of a Dataset in a (seeded, per-epoch) order, optionally prepared ahead on
// worker threads (torch.utils.data.DataLoader). Batch b of epoch e holds the same examples, the
// same augmentation and the same bytes whatever num_workers is: workers only change when a
// batch is ready. An epoch can start at any batch index, so a resumed run sees the same rest.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "moxing/data/dataset.h"

namespace moxing::data {

/// A collated batch: input (B,...), target (B,...), and its index in the epoch.
struct Batch {
  Tensor input;
  Tensor target;
  int64_t index = 0;
};

/// Turns the examples of one batch into a Batch (its index is set by the loader).
using Collate = std::function<Batch(std::vector<Example>& examples)>;

/// Stacks inputs into (B,...) and targets into (B,...) (torch default_collate); every example
/// must have the same shapes and dtypes.
Batch default_collate(std::vector<Example>& examples);

struct DataLoaderOptions {
  int64_t batch_size = 1;
  /// A new permutation each epoch, from (seed, epoch); false keeps dataset order.
  bool shuffle = false;
  /// Seeds the shuffle and every per-sample augmentation generator.
  uint64_t seed = 0;
  /// Drops the last batch when it is smaller than batch_size.
  bool drop_last = false;
  /// Threads that prepare batches ahead; 0 prepares each batch when it is asked for.
  int num_workers = 0;
  /// Batches prepared ahead per worker.
  int prefetch_factor = 2;
  /// Empty means default_collate.
  Collate collate = {};
};

class DataLoader;

/// The batches of one epoch, for range-for: `for (Batch& b : loader.epoch(e)) ...`.
/// Owns the worker threads of the epoch; leaving the loop early stops them.
class EpochRange {
 public:
  class Iterator {
   public:
    Batch& operator*() const;
    Batch* operator->() const { return &**this; }
    Iterator& operator++();
    bool operator!=(const Iterator& other) const { return range_ != other.range_; }
    bool operator==(const Iterator& other) const { return range_ == other.range_; }

   private:
    friend class EpochRange;
    explicit Iterator(EpochRange* range) : range_(range) {}
    EpochRange* range_;  // null at the end
  };

  EpochRange(const DataLoader& loader, int64_t epoch, int64_t start_batch);
  ~EpochRange();
  EpochRange(const EpochRange&) = delete;
  EpochRange& operator=(const EpochRange&) = delete;

  /// Starts the workers and fetches the first batch.
  Iterator begin();
  Iterator end() { return Iterator(nullptr); }

 private:
  struct State;
  bool advance();  // loads the next batch into current_; false past the last one
  std::unique_ptr<State> state_;
};

class DataLoader {
 public:
  DataLoader(DatasetPtr dataset, DataLoaderOptions options);

  /// Batches per epoch.
  int64_t num_batches() const;
  int64_t size() const { return num_batches(); }
  const DataLoaderOptions& options() const { return options_; }
  const DatasetPtr& dataset() const { return dataset_; }

  /// The batches of `epoch`, starting at batch `start_batch` (to resume mid-epoch).
  EpochRange epoch(int64_t epoch, int64_t start_batch = 0) const {
    return EpochRange(*this, epoch, start_batch);
  }
  /// Dataset indices in the order epoch `epoch` visits them.
  std::vector<int64_t> order(int64_t epoch) const;
  /// Batch `index` of `epoch`, built on the calling thread.
  Batch batch(int64_t epoch, int64_t index) const;
  /// Batch `index` given the epoch's order (what workers call).
  Batch batch(int64_t epoch, int64_t index, const std::vector<int64_t>& order) const;

 private:
  DatasetPtr dataset_;
  DataLoaderOptions options_;
};

}  // namespace moxing::data
