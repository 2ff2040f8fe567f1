// The training memory estimate: the run's model, optimizers and two steps on the meta device.
#include "moxing/train/estimate.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "moxing/core/allocator.h"
#include "moxing/core/error.h"
#include "moxing/core/rng.h"
#include "moxing/models/family.h"
#include "moxing/train/task.h"
#include "trainer_internal.h"

namespace moxing::train {

nlohmann::json MemoryEstimate::to_json() const {
  nlohmann::json j = {{"model", model},
                      {"task", task},
                      {"parameters", parameters},
                      {"trainable_parameters", trainable},
                      {"weight_bytes", weight_bytes}};
  if (stepped) {
    j["gradient_bytes"] = gradient_bytes;
    j["optimizer_bytes"] = optimizer_bytes;
    j["activation_bytes"] = activation_bytes;
    j["peak_bytes"] = peak_bytes;
  } else {
    j["peak_bytes"] = nullptr;
  }
  j["notes"] = notes;
  return j;
}

namespace {

uint64_t meta_in_use() { return allocator_stats(DeviceType::meta).bytes_in_use; }

// restores the default generator (dropout draws from it, on meta too) when the estimate ends
class GeneratorRestore {
 public:
  GeneratorRestore() : saved_(default_generator()) {}
  ~GeneratorRestore() { default_generator() = saved_; }
  GeneratorRestore(const GeneratorRestore&) = delete;
  GeneratorRestore& operator=(const GeneratorRestore&) = delete;

 private:
  Generator saved_;
};

}  // namespace

MemoryEstimate estimate_training_memory(const Config& config) {
  GeneratorRestore restore;
  DeviceGuard meta(kMeta);
  MemoryEstimate e;
  e.task = task_name(config);
  std::unique_ptr<Task> task = make_task(e.task, config);
  Run run(config, "", /*verbose=*/false);

  // the fields the data would set: from the config where it tells, else the family's defaults
  const models::Family& family = models::find_family(config.model.name);
  nlohmann::json facts = task->data_fields_from_config();
  if (config.model.pretrained.empty()) {
    // the family's defaults for what the data would set
    nlohmann::json fields = family.resolve(config.model.resolved(), "config", false);
    std::vector<std::string> keys, values;
    for (const std::string& k : family.data_keys) {
      if (facts.contains(k) || !fields.contains(k)) continue;
      keys.push_back(k);
      values.push_back(fields.at(k).dump());
    }
    if (!keys.empty()) {
      const bool one = keys.size() == 1;
      e.notes.push_back(fmt::format(
          "{} = {}: the family's default{}; the data sets {} when training, and the config alone "
          "does not tell",
          fmt::join(keys, ", "), fmt::join(values, ", "), one ? "" : "s", one ? "it" : "them"));
    }
  }

  const uint64_t base = meta_in_use();
  Generator init_gen(static_cast<uint64_t>(config.train.seed));
  models::Model model = detail::build_run_model(config, facts, &init_gen, run);
  e.model = model.family->describe(model.config);
  task->configure(run, std::move(model));  // may add models of its own
  e.weight_bytes = meta_in_use() - base;
  for (const auto& [name, m] : run.models()) {
    e.parameters += m.module->num_parameters();
    e.trainable += m.module->num_parameters(/*trainable_only=*/true);
  }

  allocator_reset_peak(DeviceType::meta);
  uint64_t after_backward = 0;
  for (int64_t step = 0; step < 2; ++step) {
    std::optional<StepOutput> out = task->meta_step(run);
    if (!out) break;
    out->loss.backward();
    out.reset();  // the graph and its activations are gone once backward has run
    if (step == 0) {
      after_backward = meta_in_use();
      e.gradient_bytes = after_backward - base - e.weight_bytes;
    }
    for (RunOptimizer& o : run.optimizers()) o.optimizer->step();
    if (step == 0) e.optimizer_bytes = meta_in_use() - after_backward;
    for (RunOptimizer& o : run.optimizers()) o.optimizer->zero_grad();
    e.stepped = true;
  }
  if (e.stepped) {
    e.peak_bytes = allocator_stats(DeviceType::meta).peak_bytes - base;
    const uint64_t held = e.weight_bytes + e.gradient_bytes + e.optimizer_bytes;
    e.activation_bytes = e.peak_bytes > held ? e.peak_bytes - held : 0;
  } else {
    e.notes.push_back(fmt::format(
        "task {} has no meta step: gradients, optimizer state and activations are not estimated",
        e.task));
  }
  return e;
}

}  // namespace moxing::train
