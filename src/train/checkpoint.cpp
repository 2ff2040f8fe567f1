// Checkpoint folders: model, optimizer and trainer state together.
#include "moxing/train/checkpoint.h"

#include <algorithm>
#include <filesystem>

#include "moxing/io/checkpoint.h"
#include "moxing/nn/serialize.h"
#include "moxing/optim/serialize.h"

namespace moxing::train {

namespace fs = std::filesystem;

void save_checkpoint(const std::string& dir, const nn::Module& model, const optim::Optimizer* opt,
                     const nlohmann::json& trainer_state) {
  fs::path parent = fs::path(dir).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  MOXING_CHECK(!ec, "save_checkpoint: cannot create folder {}: {}", parent.string(), ec.message());
  write_checkpoint_dir(dir, [&](const std::string& tmp) {
    nn::save_module(model, tmp + "/model.safetensors");
    if (opt != nullptr) optim::save_optimizer(*opt, tmp + "/optimizer.safetensors");
    // written last: its presence marks a complete checkpoint
    write_text_file_atomic(tmp + "/trainer_state.json", trainer_state.dump(2) + "\n");
  });
}

nlohmann::json load_checkpoint(const std::string& dir, nn::Module& model, optim::Optimizer* opt) {
  MOXING_CHECK(fs::is_directory(dir), "checkpoint {} is not a folder", dir);
  std::string state_path = dir + "/trainer_state.json";
  MOXING_CHECK(fs::exists(state_path), "checkpoint {} is incomplete: trainer_state.json is missing",
               dir);
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(read_text_file(state_path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", state_path, e.what());
  }
  nn::load_module(model, dir + "/model.safetensors", true);
  if (opt != nullptr) {
    std::string opt_path = dir + "/optimizer.safetensors";
    MOXING_CHECK(fs::exists(opt_path),
                 "checkpoint {} has no optimizer.safetensors, so training cannot resume from it",
                 dir);
    optim::load_optimizer(*opt, opt_path);
  }
  return state;
}

std::vector<std::string> complete_checkpoints(const std::string& run_dir) {
  fs::path root = fs::path(run_dir) / "checkpoints";
  std::vector<std::pair<int64_t, std::string>> found;
  if (!fs::is_directory(root)) return {};
  for (const auto& entry : fs::directory_iterator(root)) {
    std::string name = entry.path().filename().string();
    if (!entry.is_directory() || name.rfind("step-", 0) != 0) continue;
    std::string digits = name.substr(5);
    if (digits.empty() || digits.size() > 18 ||
        digits.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    if (!fs::exists(entry.path() / "trainer_state.json")) continue;
    found.emplace_back(std::stoll(digits), entry.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& [step, path] : found) out.push_back(std::move(path));
  return out;
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  std::vector<std::string> all = complete_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

nlohmann::json generator_state(const Generator& gen) {
  return {{"seed", gen.seed()}, {"offset", gen.offset()}};
}

void set_generator_state(Generator& gen, const nlohmann::json& state) {
  MOXING_CHECK(state.is_object() && state.contains("seed") && state.contains("offset"),
               "generator state must be an object with \"seed\" and \"offset\", got {}",
               state.dump());
  gen.manual_seed(state.at("seed").get<uint64_t>());
  gen.set_offset(state.at("offset").get<uint64_t>());
}

}  // namespace moxing::train
