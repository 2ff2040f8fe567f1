// The "sequence-classification" task: labelled texts or text pairs ([data] name "csv", see
// train/text_data.h), any model that is a models::SequenceClassifier (bert's
// BertForSequenceClassification), padded batches in a (seed, epoch) order, the loss of the
// model's problem type (cross-entropy with optional class weights, binary cross-entropy per
// label, mean squared error), and accuracy, macro precision / recall / F1, ROC-AUC and the
// confusion matrix on the validation and test splits and in `moxing eval`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "moxing/models/encoder.h"
#include "moxing/train/metrics.h"
#include "moxing/train/task.h"
#include "moxing/train/text_data.h"

namespace moxing::train {

/// The problem type a classifier trains for: its config's, else single-label classification
/// with two or more labels and regression with one (as transformers decides).
std::string problem_type_of(models::SequenceClassifier& model);

/// Loss and metrics of a classifier on labelled, encoded texts, in eval mode without
/// gradients. Single-label: loss, accuracy, precision_macro, recall_macro, f1_macro, roc_auc
/// (binary: of label 1; more labels: one-vs-rest macro) and the report. Multi-label (a label is
/// on when its sigmoid is >= 0.5): loss, accuracy (every label right), f1_micro, f1_macro,
/// precision_macro, recall_macro. Regression: loss, mse, mae, r2.
struct TextEvalResult {
  Metrics metrics;
  std::optional<ClassificationReport> report;  // single-label only
};
TextEvalResult evaluate_text_classifier(models::SequenceClassifier& model,
                                        const LabelledTexts& data, const std::string& problem_type,
                                        int32_t pad_id, int64_t max_batch,
                                        const std::vector<double>& class_weights = {});

}  // namespace moxing::train
