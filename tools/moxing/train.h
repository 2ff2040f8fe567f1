// `moxing train`, `moxing eval` and `moxing predict`: train an image classifier from a TOML
// config (moxing/train/trainer.h), measure a trained one on a dataset, and classify images.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moxing::tools {

struct TrainCommandOptions {
  std::string config;             // CONFIG.toml; may be empty with resume (RESUME/config.toml)
  std::vector<std::string> sets;  // "section.key=value" overrides, in order
  std::string out;                // run folder; default runs/<config name>, or the resume folder
  std::string resume;             // run folder to continue from its latest checkpoint
  bool json = false;              // final summary as one JSON object on stdout
};

/// Trains and prints the summary; returns 0, 130 when stopped by SIGINT/SIGTERM (a checkpoint
/// is saved; rerun with --resume). Errors are thrown as moxing::Error.
int run_train(const TrainCommandOptions& options);

struct EvalCommandOptions {
  std::string path;  // a run folder or a checkpoint folder
  std::string data;  // dataset folder replacing the config's [data] path
  bool json = false;
};

/// Evaluates on the test split (the validation split when there is no test split) and prints
/// a table, or JSON with accuracy, precision_macro, recall_macro, f1_macro,
/// roc_auc_ovr_macro, per_class, confusion_matrix and loss.
int run_eval(const EvalCommandOptions& options);

struct PredictCommandOptions {
  std::string checkpoint;           // a run folder or a checkpoint folder
  std::vector<std::string> images;  // image files
  int64_t top_k = 3;
  bool json = false;
};

/// Prints the top_k classes with their probabilities for each image.
int run_predict(const PredictCommandOptions& options);

}  // namespace moxing::tools
