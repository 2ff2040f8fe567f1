// Memory a training run would need, measured by running its first two optimizer steps on the
// meta device: every tensor has its shape and dtype and the meta allocator counts the bytes a
// real run would hold, but nothing is allocated or computed, so a model too large for this
// machine is measured in milliseconds. What `moxing info --config` prints.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moxing/train/config.h"

namespace moxing::train {

struct MemoryEstimate {
  std::string model;  ///< the family's one-line description
  std::string task;
  int64_t parameters = 0;  ///< every model of the run, shared tensors once
  int64_t trainable = 0;
  /// Bytes of the run's models as training holds them (f32 master weights).
  uint64_t weight_bytes = 0;
  uint64_t gradient_bytes = 0;
  uint64_t optimizer_bytes = 0;
  /// The peak of two steps minus weights, gradients and optimizer state: what one micro-batch's
  /// forward and backward keep alive at once. 0 when the task gives no meta step.
  uint64_t activation_bytes = 0;
  /// The most bytes held at once over the first two steps.
  uint64_t peak_bytes = 0;
  /// False when the task has no meta step: gradients, optimizer state and activations are
  /// then not estimated.
  bool stepped = false;
  /// Model fields the data would set that the config does not tell (the family's defaults were
  /// used), and other caveats, one sentence each.
  std::vector<std::string> notes;

  nlohmann::json to_json() const;
};

/// The memory estimate of training with config: its model (built from [model], or from the
/// config.json of [model] pretrained without reading the weights), its optimizer, and one
/// micro-batch of [data] batch_size at the model's sequence length or image size.
MemoryEstimate estimate_training_memory(const Config& config);

}  // namespace moxing::train
