// DataLoader: the epoch order, batch assembly and the worker threads that prepare batches
// ahead. Workers claim batch indices in order but may finish out of order; the consumer
// waits for the index it needs, so the sequence of batches never depends on the workers.
#include "moxing/data/dataloader.h"

#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "moxing/ops/shape.h"

namespace moxing::data {

namespace {

// Stacks one field (inputs or targets) of every example into (B,...).
Tensor stack_field(std::vector<Example>& examples, bool inputs) {
  const char* what = inputs ? "input" : "target";
  const Tensor& first = inputs ? examples[0].input : examples[0].target;
  MOXING_CHECK(first.defined(), "collate: example 0 has no {}", what);
  Shape shape = first.shape();
  DType dtype = first.dtype();
  Shape out_shape = shape;
  out_shape.insert(out_shape.begin(), static_cast<int64_t>(examples.size()));
  Tensor out = empty(out_shape, dtype);
  size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  auto* dst = static_cast<uint8_t*>(out.raw_data());
  for (size_t i = 0; i < examples.size(); ++i) {
    const Tensor& t = inputs ? examples[i].input : examples[i].target;
    MOXING_CHECK(t.defined() && t.shape() == shape && t.dtype() == dtype,
                 "collate: example {} has {} {} {} but example 0 has {} {}", i, what,
                 t.defined() ? dtype_name(t.dtype()) : "undefined",
                 t.defined() ? shape_str(t.shape()) : "", dtype_name(dtype), shape_str(shape));
    Tensor c = contiguous(t);
    if (bytes > 0) std::memcpy(dst + i * bytes, c.raw_data(), bytes);
  }
  return out;
}

}  // namespace

Batch default_collate(std::vector<Example>& examples) {
  MOXING_CHECK(!examples.empty(), "collate: empty batch");
  return {stack_field(examples, true), stack_field(examples, false), 0};
}

DataLoader::DataLoader(DatasetPtr dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  MOXING_CHECK(dataset_ != nullptr, "DataLoader: null dataset");
  MOXING_CHECK(options_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got {}",
               options_.batch_size);
  MOXING_CHECK(options_.num_workers >= 0, "DataLoader: num_workers must be >= 0, got {}",
               options_.num_workers);
  MOXING_CHECK(options_.prefetch_factor >= 1, "DataLoader: prefetch_factor must be >= 1, got {}",
               options_.prefetch_factor);
  if (!options_.collate) options_.collate = default_collate;
}

int64_t DataLoader::num_batches() const {
  int64_t n = dataset_->size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> DataLoader::order(int64_t epoch) const {
  int64_t n = dataset_->size();
  if (!options_.shuffle) {
    std::vector<int64_t> p(static_cast<size_t>(n));
    std::iota(p.begin(), p.end(), int64_t{0});
    return p;
  }
  // stream 0 of the epoch; sample_generator uses streams 1.. for the examples
  Generator gen(mix_seed(mix_seed(options_.seed, static_cast<uint64_t>(epoch)), 0));
  return permutation(n, gen);
}

Batch DataLoader::batch(int64_t epoch, int64_t index) const {
  return batch(epoch, index, order(epoch));
}

Batch DataLoader::batch(int64_t epoch, int64_t index, const std::vector<int64_t>& order) const {
  MOXING_CHECK(index >= 0 && index < num_batches(),
               "DataLoader: batch {} out of range for an epoch of {} batches", index,
               num_batches());
  int64_t n = static_cast<int64_t>(order.size());
  int64_t begin = index * options_.batch_size;
  int64_t end = std::min(n, begin + options_.batch_size);
  std::vector<Example> examples;
  examples.reserve(static_cast<size_t>(end - begin));
  for (int64_t k = begin; k < end; ++k) {
    int64_t i = order[static_cast<size_t>(k)];
    Generator gen = sample_generator(options_.seed, epoch, i);
    examples.push_back(dataset_->get(i, gen));
  }
  Batch out = options_.collate(examples);
  out.index = index;
  return out;
}

struct EpochRange::State {
  State(const DataLoader& loader, int64_t epoch, int64_t start_batch)
      : loader(loader), epoch(epoch), next(start_batch), end(loader.num_batches()) {}

  DataLoader loader;
  int64_t epoch;
  std::vector<int64_t> order;
  int64_t next;  // the batch the consumer takes next
  int64_t end;
  Batch current;
  bool started = false;

  // workers
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };
  std::vector<std::thread> threads;
  std::mutex mu;
  std::condition_variable ready_cv;  // a slot was filled
  std::condition_variable space_cv;  // the consumer moved on, or stop
  std::map<int64_t, Slot> ready;
  int64_t claim = 0;   // the next batch a worker takes
  int64_t window = 0;  // batches a worker may run ahead of the consumer
  bool stop = false;

  void work() {
    for (;;) {
      int64_t b;
      {
        std::unique_lock lock(mu);
        space_cv.wait(lock, [&] { return stop || claim >= end || claim < next + window; });
        if (stop || claim >= end) return;
        b = claim++;
      }
      Slot slot;
      try {
        slot.batch = loader.batch(epoch, b, order);
      } catch (...) {
        slot.error = std::current_exception();
      }
      {
        std::lock_guard lock(mu);
        ready.emplace(b, std::move(slot));
      }
      ready_cv.notify_all();
    }
  }
};

EpochRange::EpochRange(const DataLoader& loader, int64_t epoch, int64_t start_batch)
    : state_(std::make_unique<State>(loader, epoch, start_batch)) {
  MOXING_CHECK(epoch >= 0, "DataLoader: epoch must be >= 0, got {}", epoch);
  MOXING_CHECK(start_batch >= 0 && start_batch <= state_->end,
               "DataLoader: start batch {} out of range for an epoch of {} batches", start_batch,
               state_->end);
  state_->order = loader.order(epoch);
}

EpochRange::~EpochRange() {
  {
    std::lock_guard lock(state_->mu);
    state_->stop = true;
  }
  state_->space_cv.notify_all();
  for (auto& t : state_->threads) t.join();
}

EpochRange::Iterator EpochRange::begin() {
  State& s = *state_;
  MOXING_CHECK(!s.started, "DataLoader: an epoch range can be iterated only once");
  s.started = true;
  int workers = s.loader.options().num_workers;
  if (workers > 0 && s.next < s.end) {
    s.claim = s.next;
    s.window = static_cast<int64_t>(workers) * s.loader.options().prefetch_factor;
    for (int w = 0; w < workers; ++w) s.threads.emplace_back([&s] { s.work(); });
  }
  return advance() ? Iterator(this) : end();
}

bool EpochRange::advance() {
  State& s = *state_;
  if (s.next >= s.end) return false;
  if (s.threads.empty()) {
    s.current = s.loader.batch(s.epoch, s.next, s.order);
    ++s.next;
    return true;
  }
  State::Slot slot;
  {
    std::unique_lock lock(s.mu);
    s.ready_cv.wait(lock, [&] { return s.ready.count(s.next) > 0; });
    auto node = s.ready.extract(s.next);
    slot = std::move(node.mapped());
    ++s.next;
  }
  s.space_cv.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  s.current = std::move(slot.batch);
  return true;
}

Batch& EpochRange::Iterator::operator*() const {
  MOXING_CHECK(range_ != nullptr, "DataLoader: dereferencing the end of an epoch");
  return range_->state_->current;
}

EpochRange::Iterator& EpochRange::Iterator::operator++() {
  if (range_ != nullptr && !range_->advance()) range_ = nullptr;
  return *this;
}

}  // namespace moxing::data
