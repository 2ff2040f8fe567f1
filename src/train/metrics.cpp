// Classification metrics: plain loops over f64 copies of the scores, in sample order, so the
// result does not depend on the batching or the thread count.
#include "moxing/train/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace moxing::train {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Scores (N,C) and targets (N) as flat row-major vectors, after the checks every entry
// point shares. expected_c > 0 also requires C == expected_c.
struct Batch {
  int64_t n = 0, c = 0;
  std::vector<double> scores;
  std::vector<int64_t> targets;
};

Batch read_batch(const char* fn, const Tensor& scores, const Tensor& targets,
                 int64_t expected_c = 0) {
  MOXING_CHECK(scores.defined() && targets.defined(), "{}: undefined tensor argument", fn);
  MOXING_CHECK(scores.dim() == 2, "{}: scores must be (N,C), got shape {}", fn,
               shape_str(scores.shape()));
  MOXING_CHECK(scores.dtype() == DType::f32 || scores.dtype() == DType::f64,
               "{}: scores must be f32 or f64, got {}", fn, dtype_name(scores.dtype()));
  MOXING_CHECK(targets.dim() == 1, "{}: targets must be (N), got shape {}", fn,
               shape_str(targets.shape()));
  MOXING_CHECK(targets.dtype() == DType::i64 || targets.dtype() == DType::i32,
               "{}: targets must be i64 or i32, got {}", fn, dtype_name(targets.dtype()));
  MOXING_CHECK(
      scores.size(0) == targets.size(0), "{}: scores {} and targets {} have different N ({} vs {})",
      fn, shape_str(scores.shape()), shape_str(targets.shape()), scores.size(0), targets.size(0));
  Batch b;
  b.n = scores.size(0);
  b.c = scores.size(1);
  MOXING_CHECK(b.c >= 1, "{}: scores {} have no class column", fn, shape_str(scores.shape()));
  MOXING_CHECK(expected_c <= 0 || b.c == expected_c,
               "{}: scores {} have {} classes, expected num_classes = {}", fn,
               shape_str(scores.shape()), b.c, expected_c);
  b.scores = scores.to_vector<double>();
  b.targets = targets.to_vector<int64_t>();
  for (int64_t i = 0; i < b.n; ++i) {
    const int64_t t = b.targets[i];
    MOXING_CHECK(t >= 0 && t < b.c, "{}: target {} at index {} is out of range [0, {})", fn, t, i,
                 b.c);
  }
  for (size_t i = 0; i < b.scores.size(); ++i) {
    MOXING_CHECK(std::isfinite(b.scores[i]), "{}: score {} at row {}, class {} is not finite", fn,
                 b.scores[i], static_cast<int64_t>(i) / b.c, static_cast<int64_t>(i) % b.c);
  }
  return b;
}

// index of the row's largest score, the first one among ties (torch.argmax)
int64_t row_argmax(const double* s, int64_t c) {
  int64_t best = 0;
  for (int64_t j = 1; j < c; ++j) {
    if (s[j] > s[best]) best = j;
  }
  return best;
}

// sklearn's top-k order: descending score, ties broken by the higher class index first
bool in_top_k(const double* s, int64_t c, int64_t target, int64_t k) {
  int64_t ahead = 0;
  for (int64_t j = 0; j < c; ++j) {
    if (s[j] > s[target] || (s[j] == s[target] && j > target)) ++ahead;
  }
  return ahead < k;
}

void check_k(const char* fn, int64_t k, int64_t c) {
  MOXING_CHECK(k >= 1 && k <= c, "{}: k = {} must be in [1, C] with C = {}", fn, k, c);
}

// p = exp(z - max) / sum(exp(z - max)) over one row, in place
void softmax_row(double* z, int64_t c) {
  double m = z[0];
  for (int64_t j = 1; j < c; ++j) m = std::max(m, z[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < c; ++j) {
    z[j] = std::exp(z[j] - m);
    sum += z[j];
  }
  for (int64_t j = 0; j < c; ++j) z[j] /= sum;
}

// AUC = P(score of a positive > score of a negative) + 1/2 P(equal), counted over groups of
// equal scores in ascending order; it equals the trapezoid under sklearn's ROC curve.
// Returns NaN when either class is empty.
double auc_or_nan(const std::vector<double>& scores, const std::vector<char>& positive) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return scores[a] < scores[b]; });
  double pairs = 0.0;  // integer and half-integer counts: exact in f64 below 2^52
  int64_t neg_below = 0, pos_total = 0, neg_total = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    int64_t pos = 0, neg = 0;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) {
      if (positive[order[j]]) {
        ++pos;
      } else {
        ++neg;
      }
      ++j;
    }
    pairs += static_cast<double>(pos) * static_cast<double>(neg_below) +
             0.5 * static_cast<double>(pos) * static_cast<double>(neg);
    neg_below += neg;
    pos_total += pos;
    neg_total += neg;
    i = j;
  }
  if (pos_total == 0 || neg_total == 0) return kNaN;
  return pairs / (static_cast<double>(pos_total) * static_cast<double>(neg_total));
}

double safe_div(double num, double den) { return den == 0.0 ? 0.0 : num / den; }

}  // namespace

double accuracy(const Tensor& logits, const Tensor& targets) {
  Batch b = read_batch("accuracy", logits, targets);
  MOXING_CHECK(b.n > 0, "accuracy: no samples (N = 0)");
  int64_t hits = 0;
  for (int64_t i = 0; i < b.n; ++i) {
    hits += row_argmax(&b.scores[i * b.c], b.c) == b.targets[i];
  }
  return static_cast<double>(hits) / static_cast<double>(b.n);
}

double top_k_accuracy(const Tensor& logits, const Tensor& targets, int64_t k) {
  Batch b = read_batch("top_k_accuracy", logits, targets);
  check_k("top_k_accuracy", k, b.c);
  MOXING_CHECK(b.n > 0, "top_k_accuracy: no samples (N = 0)");
  int64_t hits = 0;
  for (int64_t i = 0; i < b.n; ++i) {
    hits += in_top_k(&b.scores[i * b.c], b.c, b.targets[i], k);
  }
  return static_cast<double>(hits) / static_cast<double>(b.n);
}

double roc_auc_binary(const std::vector<double>& scores, const std::vector<int64_t>& labels) {
  MOXING_CHECK(scores.size() == labels.size(),
               "roc_auc_binary: {} scores and {} labels differ in length", scores.size(),
               labels.size());
  std::vector<char> positive(labels.size());
  int64_t num_pos = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    MOXING_CHECK(labels[i] == 0 || labels[i] == 1,
                 "roc_auc_binary: label {} at index {} is not 0 or 1", labels[i], i);
    MOXING_CHECK(std::isfinite(scores[i]), "roc_auc_binary: score {} at index {} is not finite",
                 scores[i], i);
    positive[i] = labels[i] == 1;
    num_pos += labels[i];
  }
  const int64_t num_neg = static_cast<int64_t>(labels.size()) - num_pos;
  MOXING_CHECK(num_pos > 0 && num_neg > 0,
               "roc_auc_binary: needs both classes, got {} positive and {} negative labels; "
               "ROC AUC is undefined",
               num_pos, num_neg);
  return auc_or_nan(scores, positive);
}

// ---- ClassificationMetrics

ClassificationMetrics::ClassificationMetrics(int64_t num_classes, bool inputs_are_logits,
                                             int64_t top_k)
    : num_classes_(num_classes), inputs_are_logits_(inputs_are_logits), top_k_(top_k) {
  MOXING_CHECK(num_classes >= 2, "ClassificationMetrics: num_classes must be >= 2, got {}",
               num_classes);
  if (top_k_ <= 0) top_k_ = std::min<int64_t>(5, num_classes);
  check_k("ClassificationMetrics", top_k_, num_classes);
  confusion_.assign(static_cast<size_t>(num_classes * num_classes), 0);
}

void ClassificationMetrics::update(const Tensor& logits_or_probs, const Tensor& targets) {
  Batch b = read_batch("ClassificationMetrics::update", logits_or_probs, targets, num_classes_);
  const int64_t c = num_classes_;
  for (int64_t i = 0; i < b.n; ++i) {
    double* row = &b.scores[i * c];
    const int64_t t = b.targets[i];
    ++confusion_[t * c + row_argmax(row, c)];
    top_k_hits_ += in_top_k(row, c, t, top_k_);
    if (inputs_are_logits_) softmax_row(row, c);
  }
  probs_.insert(probs_.end(), b.scores.begin(), b.scores.end());
  targets_.insert(targets_.end(), b.targets.begin(), b.targets.end());
}

void ClassificationMetrics::reset() {
  std::fill(confusion_.begin(), confusion_.end(), 0);
  top_k_hits_ = 0;
  probs_.clear();
  targets_.clear();
}

ClassificationReport ClassificationMetrics::compute() const {
  const int64_t c = num_classes_;
  const int64_t n = num_samples();
  MOXING_CHECK(n > 0, "ClassificationMetrics::compute: no samples were added");
  ClassificationReport r;
  r.num_samples = n;
  r.top_k = top_k_;
  r.top_k_accuracy = static_cast<double>(top_k_hits_) / static_cast<double>(n);
  r.confusion_matrix.assign(c, std::vector<int64_t>(c, 0));
  std::vector<int64_t> predicted(c, 0);
  int64_t correct = 0;
  for (int64_t t = 0; t < c; ++t) {
    for (int64_t p = 0; p < c; ++p) {
      const int64_t count = confusion_[t * c + p];
      r.confusion_matrix[t][p] = count;
      predicted[p] += count;
    }
    correct += confusion_[t * c + t];
  }
  r.accuracy = static_cast<double>(correct) / static_cast<double>(n);

  // precision = tp / predicted, recall = tp / support, f1 = 2 tp / (support + predicted);
  // the F1 form is sklearn's (it is 0, not NaN, when precision and recall are both 0)
  r.precision.resize(c);
  r.recall.resize(c);
  r.f1.resize(c);
  r.support.resize(c);
  for (int64_t k = 0; k < c; ++k) {
    const double tp = static_cast<double>(confusion_[k * c + k]);
    int64_t support = 0;
    for (int64_t p = 0; p < c; ++p) support += confusion_[k * c + p];
    r.support[k] = support;
    r.precision[k] = safe_div(tp, static_cast<double>(predicted[k]));
    r.recall[k] = safe_div(tp, static_cast<double>(support));
    r.f1[k] = safe_div(2.0 * tp, static_cast<double>(support + predicted[k]));
  }
  auto macro = [&](const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(c);
  };
  auto weighted = [&](const std::vector<double>& v) {
    double s = 0.0;
    for (int64_t k = 0; k < c; ++k) s += v[k] * static_cast<double>(r.support[k]);
    return s / static_cast<double>(n);
  };
  r.precision_macro = macro(r.precision);
  r.recall_macro = macro(r.recall);
  r.f1_macro = macro(r.f1);
  r.precision_weighted = weighted(r.precision);
  r.recall_weighted = weighted(r.recall);
  r.f1_weighted = weighted(r.f1);

  // one-vs-rest AUC of each class's probability column
  std::vector<double> column(n);
  std::vector<char> positive(n);
  double auc_sum = 0.0;
  int64_t auc_classes = 0;
  r.roc_auc = kNaN;
  for (int64_t k = 0; k < c; ++k) {
    for (int64_t i = 0; i < n; ++i) {
      column[i] = probs_[i * c + k];
      positive[i] = targets_[i] == k;
    }
    const double auc = auc_or_nan(column, positive);
    if (c == 2 && k == 1) r.roc_auc = auc;
    if (std::isnan(auc)) continue;
    auc_sum += auc;
    ++auc_classes;
  }
  r.roc_auc_ovr_macro = auc_classes > 0 ? auc_sum / static_cast<double>(auc_classes) : kNaN;
  return r;
}

// ---- ClassificationReport output

namespace {

nlohmann::json number_or_null(double v) {
  return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
}

}  // namespace

nlohmann::json ClassificationReport::to_json() const {
  nlohmann::json j;
  j["num_samples"] = num_samples;
  j["accuracy"] = accuracy;
  j["top_k"] = top_k;
  j["top_k_accuracy"] = top_k_accuracy;
  j["precision_macro"] = precision_macro;
  j["recall_macro"] = recall_macro;
  j["f1_macro"] = f1_macro;
  j["precision_weighted"] = precision_weighted;
  j["recall_weighted"] = recall_weighted;
  j["f1_weighted"] = f1_weighted;
  j["roc_auc_ovr_macro"] = number_or_null(roc_auc_ovr_macro);
  j["roc_auc"] = number_or_null(roc_auc);
  nlohmann::json per_class = nlohmann::json::array();
  for (size_t k = 0; k < precision.size(); ++k) {
    per_class.push_back({{"class", static_cast<int64_t>(k)},
                         {"precision", precision[k]},
                         {"recall", recall[k]},
                         {"f1", f1[k]},
                         {"support", support[k]}});
  }
  j["per_class"] = per_class;
  j["confusion_matrix"] = confusion_matrix;
  return j;
}

std::string ClassificationReport::to_table(const std::vector<std::string>& class_names) const {
  const size_t c = precision.size();
  MOXING_CHECK(class_names.empty() || class_names.size() == c,
               "ClassificationReport::to_table: {} class names for {} classes", class_names.size(),
               c);
  std::vector<std::string> names(c);
  for (size_t k = 0; k < c; ++k)
    names[k] = class_names.empty() ? std::to_string(k) : class_names[k];
  size_t width = std::string("weighted avg").size();
  for (const auto& s : names) width = std::max(width, s.size());

  // the per-class block, laid out as sklearn's classification_report (digits=4)
  std::string out = fmt::format("{:>{}} {:>9} {:>9} {:>9} {:>9}\n\n", "", width, "precision",
                                "recall", "f1-score", "support");
  for (size_t k = 0; k < c; ++k) {
    out += fmt::format("{:>{}} {:>9.4f} {:>9.4f} {:>9.4f} {:>9}\n", names[k], width, precision[k],
                       recall[k], f1[k], support[k]);
  }
  out += "\n";
  out += fmt::format("{:>{}} {:>9} {:>9} {:>9.4f} {:>9}\n", "accuracy", width, "", "", accuracy,
                     num_samples);
  out += fmt::format("{:>{}} {:>9.4f} {:>9.4f} {:>9.4f} {:>9}\n", "macro avg", width,
                     precision_macro, recall_macro, f1_macro, num_samples);
  out += fmt::format("{:>{}} {:>9.4f} {:>9.4f} {:>9.4f} {:>9}\n\n", "weighted avg", width,
                     precision_weighted, recall_weighted, f1_weighted, num_samples);
  out += fmt::format("top-{} accuracy: {:.4f}\n", top_k, top_k_accuracy);
  out += fmt::format("ROC AUC (one-vs-rest, macro): {:.4f}\n", roc_auc_ovr_macro);
  if (c == 2) out += fmt::format("ROC AUC (binary): {:.4f}\n", roc_auc);

  // the confusion matrix: every column as wide as its widest name or count
  out += "\nconfusion matrix (rows = true class, columns = predicted class)\n";
  size_t cell = 1;
  for (const auto& s : names) cell = std::max(cell, s.size());
  for (const auto& row : confusion_matrix) {
    for (int64_t v : row) cell = std::max(cell, std::to_string(v).size());
  }
  size_t label = 1;
  for (const auto& s : names) label = std::max(label, s.size());
  out += fmt::format("{:>{}}", "", label);
  for (const auto& s : names) out += fmt::format(" {:>{}}", s, cell);
  out += "\n";
  for (size_t t = 0; t < c; ++t) {
    out += fmt::format("{:>{}}", names[t], label);
    for (int64_t v : confusion_matrix[t]) out += fmt::format(" {:>{}}", v, cell);
    out += "\n";
  }
  return out;
}

}  // namespace moxing::train
