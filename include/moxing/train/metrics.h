// Classification metrics for evaluation: accuracy, top-k accuracy, per-class precision /
// recall / F1, confusion matrix and ROC-AUC, matching scikit-learn's definitions. They read
// tensor values on the CPU in f64; they are not ops (no autograd, no kernels).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moxing/core/tensor.h"

namespace moxing::train {

/// Fraction of rows whose argmax (first index among ties, as torch.argmax) equals the target.
/// logits (N,C) f32/f64 logits or probabilities, targets (N) i64/i32 in [0, C);
/// matches sklearn.metrics.accuracy_score(targets, logits.argmax(1)).
double accuracy(const Tensor& logits, const Tensor& targets);

/// Fraction of rows whose target is among the k highest scores, 1 <= k <= C. Ties are ordered
/// as sklearn.metrics.top_k_accuracy_score orders them (the higher class index ranks first),
/// so the target is a hit when #{j : s_j > s_t} + #{j > t : s_j == s_t} < k.
double top_k_accuracy(const Tensor& logits, const Tensor& targets, int64_t k);

/// Area under the ROC curve of scores against labels in {0, 1}; tied scores count 1/2
/// (the trapezoid over distinct thresholds), as sklearn.metrics.roc_auc_score. Needs at least
/// one positive and one negative label.
double roc_auc_binary(const std::vector<double>& scores, const std::vector<int64_t>& labels);

/// Everything ClassificationMetrics::compute() measures. Per-class vectors have C entries,
/// one per class 0..C-1, whether or not the class occurs (sklearn with labels=range(C)).
/// A ratio with a zero denominator is 0 (sklearn's zero_division=0): precision of a class
/// never predicted, recall of a class absent from the targets, and their F1.
struct ClassificationReport {
  int64_t num_samples = 0;
  double accuracy = 0.0;
  int64_t top_k = 0;  // the k of top_k_accuracy
  double top_k_accuracy = 0.0;
  std::vector<double> precision, recall, f1;
  std::vector<int64_t> support;  // samples of each true class
  double precision_macro = 0.0, recall_macro = 0.0, f1_macro = 0.0;
  double precision_weighted = 0.0, recall_weighted = 0.0, f1_weighted = 0.0;
  /// Mean one-vs-rest AUC over the classes that have both positive and negative samples;
  /// classes absent from the targets are skipped (sklearn raises instead). NaN when no class
  /// qualifies.
  double roc_auc_ovr_macro = 0.0;
  /// C == 2 only: AUC of the class-1 probability; NaN for C > 2 or when the targets hold a
  /// single class.
  double roc_auc = 0.0;
  /// (C,C) counts, rows = true class, columns = predicted class (sklearn's confusion_matrix).
  std::vector<std::vector<int64_t>> confusion_matrix;

  /// Keys: num_samples, accuracy, top_k, top_k_accuracy, precision_macro, recall_macro,
  /// f1_macro, precision_weighted, recall_weighted, f1_weighted, roc_auc_ovr_macro, roc_auc,
  /// per_class (array of {class, precision, recall, f1, support}), confusion_matrix.
  /// NaN values are written as null.
  nlohmann::json to_json() const;
  /// sklearn.metrics.classification_report's layout (per-class rows, accuracy, macro and
  /// weighted averages), then top-k accuracy, ROC-AUC and the confusion matrix with aligned
  /// columns. class_names, when given, has C names.
  std::string to_table(const std::vector<std::string>& class_names = {}) const;
};

/// Streaming accumulator over batches: keeps the confusion matrix, top-k hits and, for
/// ROC-AUC, every row's probabilities and target (N*C doubles over the whole evaluation).
/// Feeding the data in any batching gives the same report.
class ClassificationMetrics {
 public:
  /// inputs_are_logits: update() applies a softmax along C before keeping scores for AUC
  /// (argmax and top-k are unchanged by it). top_k <= 0 means min(5, num_classes).
  explicit ClassificationMetrics(int64_t num_classes, bool inputs_are_logits = false,
                                 int64_t top_k = 0);

  /// Adds a batch. logits_or_probs (N,C) f32/f64, finite; targets (N) i64/i32 in [0, C).
  void update(const Tensor& logits_or_probs, const Tensor& targets);
  /// The metrics over everything added since construction or reset(); needs one sample.
  ClassificationReport compute() const;
  /// Forgets all samples.
  void reset();

  int64_t num_classes() const { return num_classes_; }
  int64_t num_samples() const { return static_cast<int64_t>(targets_.size()); }

 private:
  int64_t num_classes_;
  bool inputs_are_logits_;
  int64_t top_k_;
  int64_t top_k_hits_ = 0;
  std::vector<int64_t> confusion_;  // (C,C) row-major, rows = true class
  std::vector<double> probs_;       // (N,C) row-major
  std::vector<int64_t> targets_;    // (N)
};

}  // namespace moxing::train
