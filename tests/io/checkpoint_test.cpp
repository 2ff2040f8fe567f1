// Checkpoint folders and atomic text files: a new folder appears whole, an existing one is
// replaced whole, a failing writer leaves the old checkpoint and no temporary folder.
#include "moxing/io/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <stdexcept>

#include "moxing/io/safetensors.h"

using namespace moxing;
namespace fs = std::filesystem;

namespace {

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            fmt::format("moxing_checkpoint_test_{}_{}", getpid(),
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Names of the entries in a folder.
  static std::set<std::string> names(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
    return out;
  }

  // A checkpoint like the trainer's: weights, optimizer state, trainer_state.json.
  static void write_checkpoint(const std::string& dir, float value, int step) {
    save_safetensors(dir + "/model.safetensors", {{"w", full({4}, value)}});
    save_safetensors(dir + "/optimizer.safetensors", {{"w.exp_avg", zeros({4})}});
    write_text_file_atomic(dir + "/trainer_state.json", fmt::format("{{\"step\":{}}}", step));
  }

  fs::path root_;
};

}  // namespace

TEST_F(CheckpointTest, CreatesANewFolder) {
  std::string dir = (root_ / "ckpt").string();
  std::string seen_tmp;
  write_checkpoint_dir(dir, [&](const std::string& tmp) {
    seen_tmp = tmp;
    EXPECT_EQ(tmp.rfind(dir + ".tmp-", 0), 0u) << tmp;
    EXPECT_FALSE(fs::exists(dir));
    write_checkpoint(tmp, 1.0f, 10);
  });
  EXPECT_EQ(names(dir), (std::set<std::string>{"model.safetensors", "optimizer.safetensors",
                                               "trainer_state.json"}));
  EXPECT_EQ(names(root_), std::set<std::string>{"ckpt"});
  EXPECT_FALSE(fs::exists(seen_tmp));
  EXPECT_EQ(read_text_file(dir + "/trainer_state.json"), "{\"step\":10}");
  EXPECT_EQ(load_safetensors(dir + "/model.safetensors").get("w").to_vector<float>()[0], 1.0f);
}

TEST_F(CheckpointTest, ReplacesAnExistingFolderWhole) {
  std::string dir = (root_ / "ckpt").string();
  write_checkpoint_dir(dir, [&](const std::string& tmp) {
    write_checkpoint(tmp, 1.0f, 10);
    write_text_file_atomic(tmp + "/only_in_old.txt", "old");
    fs::create_directories(tmp + "/sub");
    write_text_file_atomic(tmp + "/sub/nested.txt", "old");
  });
  // tensors loaded from the old checkpoint stay valid after it is replaced
  Tensor old_w = load_safetensors(dir + "/model.safetensors").get("w");
  write_checkpoint_dir(dir + "/", [&](const std::string& tmp) { write_checkpoint(tmp, 2.0f, 20); });
  EXPECT_EQ(names(dir), (std::set<std::string>{"model.safetensors", "optimizer.safetensors",
                                               "trainer_state.json"}));
  EXPECT_EQ(names(root_), std::set<std::string>{"ckpt"});
  EXPECT_EQ(read_text_file(dir + "/trainer_state.json"), "{\"step\":20}");
  EXPECT_EQ(load_safetensors(dir + "/model.safetensors").get("w").to_vector<float>()[0], 2.0f);
  EXPECT_EQ(old_w.to_vector<float>()[0], 1.0f);
}

TEST_F(CheckpointTest, FailingWriterLeavesTheOldCheckpoint) {
  std::string dir = (root_ / "ckpt").string();
  write_checkpoint_dir(dir, [&](const std::string& tmp) { write_checkpoint(tmp, 1.0f, 10); });
  EXPECT_THROW(write_checkpoint_dir(dir,
                                    [&](const std::string& tmp) {
                                      write_checkpoint(tmp, 2.0f, 20);
                                      throw std::runtime_error("disk full");
                                    }),
               std::runtime_error);
  EXPECT_THROW(
      write_checkpoint_dir(
          dir,
          [&](const std::string& tmp) {
            save_safetensors(tmp + "/model.safetensors", {{"a", ones({1})}, {"a", ones({1})}});
          }),
      Error);
  EXPECT_EQ(names(root_), std::set<std::string>{"ckpt"});
  EXPECT_EQ(read_text_file(dir + "/trainer_state.json"), "{\"step\":10}");
  EXPECT_EQ(load_safetensors(dir + "/model.safetensors").get("w").to_vector<float>()[0], 1.0f);
}

TEST_F(CheckpointTest, FailingFirstWriteLeavesNothing) {
  std::string dir = (root_ / "ckpt").string();
  EXPECT_THROW(write_checkpoint_dir(dir, [](const std::string&) { throw Error("stop"); }), Error);
  EXPECT_TRUE(names(root_).empty());
}

TEST_F(CheckpointTest, RefusesToReplaceAFile) {
  std::string file = (root_ / "ckpt").string();
  write_text_file_atomic(file, "not a folder");
  try {
    write_checkpoint_dir(file, [](const std::string&) {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "write_checkpoint_dir: " + file + " exists and is not a folder");
  }
  EXPECT_EQ(read_text_file(file), "not a folder");
  EXPECT_EQ(names(root_), std::set<std::string>{"ckpt"});
}

TEST_F(CheckpointTest, MissingParentFolderIsAnError) {
  std::string dir = (root_ / "no" / "ckpt").string();
  EXPECT_THROW(write_checkpoint_dir(dir, [](const std::string&) {}), Error);
}

TEST_F(CheckpointTest, TextFilesAreReplacedAtomically) {
  std::string file = (root_ / "state.json").string();
  write_text_file_atomic(file, "one");
  write_text_file_atomic(file, "two, longer");
  EXPECT_EQ(read_text_file(file), "two, longer");
  EXPECT_EQ(names(root_), std::set<std::string>{"state.json"});
  try {
    read_text_file((root_ / "missing.json").string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              (root_ / "missing.json").string() + ": cannot open: No such file or directory");
  }
}
