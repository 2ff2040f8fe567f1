// DataLoader: batch order and content fixed by (seed, epoch, batch index) whatever the number
// of workers, resume at a batch, drop_last, collate; random_split and train_val_split.
#include "moxing/data/dataloader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "moxing/data/image.h"
#include "op_harness.h"

using namespace moxing;
using namespace moxing::data;
using moxing::testing::contains;
using moxing::testing::error_of;

namespace {

// Example i: input (2) = [i, a random draw], target i; counts get() calls.
class DrawingDataset : public Dataset {
 public:
  explicit DrawingDataset(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  Example get(int64_t index, Generator& gen) const override {
    ++calls;
    MOXING_CHECK(index != fail_at, "DrawingDataset: cannot load example {}", index);
    float draw = uniform_float(gen);
    return {from_vector<float>({static_cast<float>(index), draw}, {2}),
            scalar_tensor(static_cast<double>(index), DType::i64)};
  }
  int64_t n_;
  int64_t fail_at = -1;
  mutable std::atomic<int64_t> calls{0};
};

// Every batch of an epoch as flat values (input then target), in the order the loop sees them.
std::vector<std::vector<float>> run_epoch(const DataLoader& loader, int64_t epoch,
                                          int64_t start = 0) {
  std::vector<std::vector<float>> out;
  int64_t expected_index = start;
  for (Batch& b : loader.epoch(epoch, start)) {
    EXPECT_EQ(b.index, expected_index++);
    std::vector<float> v = b.input.to_vector<float>();
    for (int64_t t : b.target.to_vector<int64_t>()) v.push_back(static_cast<float>(t));
    out.push_back(v);
  }
  return out;
}

DataLoaderOptions opts(int64_t batch_size, bool shuffle, int workers, uint64_t seed = 7) {
  DataLoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = shuffle;
  o.seed = seed;
  o.num_workers = workers;
  return o;
}

}  // namespace

TEST(DataLoader, SameBatchesWhateverTheWorkers) {
  auto ds = std::make_shared<DrawingDataset>(23);
  auto ref = run_epoch(DataLoader(ds, opts(4, true, 0)), 2);
  ASSERT_EQ(ref.size(), 6u);
  for (int workers : {1, 3}) {
    DataLoaderOptions o = opts(4, true, workers);
    o.prefetch_factor = workers == 3 ? 1 : 4;
    EXPECT_EQ(run_epoch(DataLoader(ds, o), 2), ref) << workers << " workers";
  }
  // a shuffled epoch visits every example once, and epochs differ
  std::multiset<float> seen;
  for (const auto& b : ref)
    for (size_t k = 0; k < b.size() - b.size() / 3; k += 2) seen.insert(b[k]);
  EXPECT_EQ(seen.size(), 23u);
  EXPECT_EQ(std::set<float>(seen.begin(), seen.end()).size(), 23u);
  EXPECT_NE(run_epoch(DataLoader(ds, opts(4, true, 0)), 3), ref);
  EXPECT_NE(run_epoch(DataLoader(ds, opts(4, true, 0, /*seed=*/8)), 2), ref);
}

TEST(DataLoader, ResumeAtABatchGivesTheRestOfTheEpoch) {
  auto ds = std::make_shared<DrawingDataset>(30);
  for (int workers : {0, 2}) {
    DataLoader loader(ds, opts(4, true, workers));
    auto full = run_epoch(loader, 5);
    auto rest = run_epoch(loader, 5, 3);
    EXPECT_EQ(rest, std::vector<std::vector<float>>(full.begin() + 3, full.end()));
    EXPECT_TRUE(run_epoch(loader, 5, loader.num_batches()).empty());
    // a fresh loader (a restarted process) sees the same epoch
    EXPECT_EQ(run_epoch(DataLoader(ds, opts(4, true, workers)), 5), full);
    EXPECT_TRUE(
        moxing::testing::compare(
            loader.batch(5, 2).input,
            from_vector<float>(std::vector<float>(full[2].begin(), full[2].begin() + 8), {4, 2}), 0,
            0)
            .empty());
  }
  EXPECT_TRUE(contains(error_of([&] { DataLoader(ds, opts(4, true, 0)).epoch(0, 9); }),
                       "start batch 9 out of range for an epoch of 8 batches"));
}

TEST(DataLoader, UnshuffledOrderDropLastAndCollateShapes) {
  auto ds = std::make_shared<DrawingDataset>(10);
  DataLoaderOptions o = opts(4, false, 0);
  DataLoader keep(ds, o);
  EXPECT_EQ(keep.num_batches(), 3);
  std::vector<Shape> shapes;
  for (Batch& b : keep.epoch(0)) {
    shapes.push_back(b.input.shape());
    EXPECT_EQ(b.target.dtype(), DType::i64);
    EXPECT_EQ(b.target.to_vector<int64_t>()[0], b.index * 4);
  }
  EXPECT_EQ(shapes, (std::vector<Shape>{{4, 2}, {4, 2}, {2, 2}}));
  o.drop_last = true;
  DataLoader drop(ds, o);
  EXPECT_EQ(drop.num_batches(), 2);
  int64_t n = 0;
  for (Batch& b : drop.epoch(0)) n += b.input.size(0);
  EXPECT_EQ(n, 8);
  EXPECT_EQ(keep.order(0), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(DataLoader, AugmentationDependsOnSeedEpochAndIndexOnly) {
  auto ds = std::make_shared<DrawingDataset>(8);
  // batch size does not change an example's draw
  auto draws = [&](int64_t bs, int64_t epoch) {
    std::vector<float> d(8);
    for (Batch& b : DataLoader(ds, opts(bs, true, 0)).epoch(epoch)) {
      auto v = b.input.to_vector<float>();
      for (size_t k = 0; k < v.size(); k += 2) d[static_cast<size_t>(v[k])] = v[k + 1];
    }
    return d;
  };
  EXPECT_EQ(draws(3, 1), draws(5, 1));
  EXPECT_NE(draws(3, 1), draws(3, 2));
  Generator g = sample_generator(7, 1, 4);
  EXPECT_EQ(draws(3, 1)[4], uniform_float(g));
}

TEST(DataLoader, CustomCollateAndWorkerErrors) {
  auto ds = std::make_shared<DrawingDataset>(9);
  DataLoaderOptions o = opts(3, false, 2);
  o.collate = [](std::vector<Example>& examples) {
    Batch b = default_collate(examples);
    b.input = b.input.sum();
    return b;
  };
  for (Batch& b : DataLoader(ds, o).epoch(0)) EXPECT_EQ(b.input.dim(), 0);

  auto bad = std::make_shared<DrawingDataset>(9);
  bad->fail_at = 4;
  std::vector<int64_t> seen;
  std::string e = error_of([&] {
    for (Batch& b : DataLoader(bad, opts(3, false, 2)).epoch(0)) seen.push_back(b.index);
  });
  EXPECT_TRUE(contains(e, "cannot load example 4")) << e;
  EXPECT_EQ(seen, std::vector<int64_t>{0});

  // leaving early stops the workers; prefetching stays within its window
  auto big = std::make_shared<DrawingDataset>(1000);
  DataLoaderOptions p = opts(10, true, 2);
  p.prefetch_factor = 1;
  for (Batch& b : DataLoader(big, p).epoch(0)) {
    if (b.index == 1) break;
  }
  EXPECT_LE(big->calls.load(), 10 * (2 + 2 + 1));
}

TEST(DataLoader, CollateErrors) {
  std::vector<Example> ex = {{zeros({2}), scalar_tensor(0, DType::i64)},
                             {zeros({3}), scalar_tensor(1, DType::i64)}};
  EXPECT_EQ(error_of([&] { default_collate(ex); }),
            "collate: example 1 has input f32 [3] but example 0 has f32 [2]");
  auto ds = std::make_shared<DrawingDataset>(3);
  EXPECT_TRUE(contains(error_of([&] { DataLoader(ds, opts(0, false, 0)); }),
                       "batch_size must be >= 1, got 0"));
}

TEST(Split, SizesDisjointAndSeeded) {
  auto ds = std::make_shared<DrawingDataset>(50);
  auto parts = random_split(ds, {30, 15, 5}, 3);
  ASSERT_EQ(parts.size(), 3u);
  std::set<int64_t> all;
  for (const auto& p : parts)
    for (int64_t i : p->indices()) all.insert(i);
  EXPECT_EQ(all.size(), 50u);
  EXPECT_EQ(parts[1]->size(), 15);
  EXPECT_EQ(random_split(ds, {30, 15, 5}, 3)[0]->indices(), parts[0]->indices());
  EXPECT_NE(random_split(ds, {30, 15, 5}, 4)[0]->indices(), parts[0]->indices());
  EXPECT_EQ((*parts[2])[0].target.item<int64_t>(), parts[2]->indices()[0]);

  auto [train, val] = train_val_split(ds, 0.1, 1);
  EXPECT_EQ(train->size(), 45);
  EXPECT_EQ(val->size(), 5);
  for (int64_t i : val->indices()) {
    EXPECT_EQ(std::count(train->indices().begin(), train->indices().end(), i), 0);
  }
  EXPECT_TRUE(contains(error_of([&] {
                         random_split(ds, {30, 10}, 0);
                       }),
                       "lengths [30, 10] sum to 40 but the dataset has 50 examples"));
  EXPECT_TRUE(contains(error_of([&] { train_val_split(ds, 1.0, 0); }), "val_fraction"));
}

TEST(TensorDataset, RowsAsExamples) {
  auto ds = std::make_shared<TensorDataset>(arange(12, DType::f32).reshape({6, 2}),
                                            arange(6, DType::i64));
  DataLoader loader(ds, opts(4, false, 0));
  Batch b = loader.batch(0, 1);
  EXPECT_EQ(b.input.shape(), (Shape{2, 2}));
  EXPECT_EQ(b.input.to_vector<float>(), (std::vector<float>{8, 9, 10, 11}));
  EXPECT_EQ(b.target.to_vector<int64_t>(), (std::vector<int64_t>{4, 5}));
  EXPECT_TRUE(contains(error_of([] {
                         TensorDataset(zeros({3, 2}), zeros({4}));
                       }),
                       "inputs [3, 2] and targets [4] need the same first dim"));
}
