// EpochBatches: steps and micro-batches of an epoch with gradient accumulation, and the seeded
// per-epoch shuffle that the text tasks batch their items with.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "moxing/moxing.h"
#include "moxing/train/epoch_batches.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
using train::EpochBatches;

namespace {

TEST(EpochBatches, CountsStepsAndTheShortLastStep) {
  EpochBatches b(10, 3, 2);  // batches of 3, 3, 3, 1; steps of 2 and 2 micro-batches
  EXPECT_EQ(b.batches(), 4);
  EXPECT_EQ(b.steps_per_epoch(), 2);
  EpochBatches odd(10, 4, 2);  // batches of 4, 4, 2: a step of 2 then one of 1
  EXPECT_EQ(odd.steps_per_epoch(), 2);
  EXPECT_EQ(odd.micro_batches(0), 2);
  EXPECT_EQ(odd.micro_batches(1), 1);
  EXPECT_EQ(odd.micro_batches(2), 2);  // the next epoch starts full
  EXPECT_EQ(odd.epoch(3), 1);
  EXPECT_EQ(odd.index(3, 0), 2);
  EpochBatches loader = EpochBatches::of_batches(5, 1);
  EXPECT_EQ(loader.steps_per_epoch(), 5);
  EXPECT_TRUE(contains(error_of([&] { loader.items(0, 0, 1); }), "counted by a loader"));
}

TEST(EpochBatches, EachEpochIsAPermutationDrawnFromTheSeedAndEpoch) {
  EpochBatches b(10, 4, 1);  // 3 steps an epoch
  auto epoch_items = [](EpochBatches& e, int64_t epoch, uint64_t seed) {
    std::vector<int64_t> all;
    for (int64_t s = epoch * 3; s < epoch * 3 + 3; ++s) {
      auto items = e.items(s, 0, seed);
      all.insert(all.end(), items.begin(), items.end());
    }
    return all;
  };
  std::vector<int64_t> e0 = epoch_items(b, 0, 1), e1 = epoch_items(b, 1, 1);
  ASSERT_EQ(e0.size(), 10u);
  EXPECT_NE(e0, e1);
  std::vector<int64_t> sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  EpochBatches again(10, 4, 1);  // a resumed run: the same batches for the same steps
  EXPECT_EQ(epoch_items(again, 1, 1), e1);
  EXPECT_EQ(epoch_items(again, 0, 1), e0);
  EXPECT_NE(epoch_items(again, 0, 2), e0);
  EXPECT_EQ(b.items(2, 0, 1).size(), 2u);
  EXPECT_TRUE(contains(error_of([&] { b.items(2, 1, 1); }), "past the data"));
}

}  // namespace
