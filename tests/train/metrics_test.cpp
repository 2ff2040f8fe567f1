// Classification metrics against scikit-learn: the numbers come from
// tests/fixtures/metrics.py (metrics.json); also batching, JSON keys, the table and errors.
#include "moxing/train/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
using train::ClassificationMetrics;
using train::ClassificationReport;

namespace {

constexpr double kTol = 1e-12;

const nlohmann::json& fixture() {
  static const nlohmann::json j = [] {
    std::ifstream f(MOXING_FIXTURE_DIR "/metrics.json");
    return nlohmann::json::parse(f);
  }();
  return j;
}

struct Case {
  std::string name;
  nlohmann::json ref;
  int64_t c = 0, n = 0;
  Tensor scores, targets;  // (N,C) f64, (N) i64
};

Case load_case(const std::string& name) {
  Case k;
  k.name = name;
  k.ref = fixture().at(name);
  k.c = k.ref.at("num_classes").get<int64_t>();
  auto targets = k.ref.at("targets").get<std::vector<int64_t>>();
  k.n = static_cast<int64_t>(targets.size());
  k.scores = from_vector<double>(k.ref.at("scores").get<std::vector<double>>(), {k.n, k.c});
  k.targets = from_vector<int64_t>(targets, {k.n});
  return k;
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const auto& [name, _] : fixture().items()) names.push_back(name);
  return names;
}

ClassificationMetrics metrics_for(const Case& k) {
  return ClassificationMetrics(k.c, k.ref.at("inputs_are_logits").get<bool>(),
                               k.ref.at("k").get<int64_t>());
}

// feeds rows [begin, end) of the case as one batch
void feed(ClassificationMetrics& m, const Case& k, int64_t begin, int64_t end) {
  m.update(k.scores.slice(0, begin, end), k.targets.slice(0, begin, end));
}

void expect_near_vec(const std::vector<double>& a, const nlohmann::json& b,
                     const std::string& what) {
  auto ref = b.get<std::vector<double>>();
  ASSERT_EQ(a.size(), ref.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], ref[i], kTol) << what << "[" << i << "]";
}

void expect_matches_sklearn(const ClassificationReport& r, const Case& k) {
  const auto& ref = k.ref;
  SCOPED_TRACE(k.name);
  EXPECT_EQ(r.num_samples, k.n);
  EXPECT_NEAR(r.accuracy, ref.at("accuracy").get<double>(), kTol);
  EXPECT_EQ(r.top_k, ref.at("k").get<int64_t>());
  EXPECT_NEAR(r.top_k_accuracy, ref.at("top_k").at(std::to_string(r.top_k)).get<double>(), kTol);
  expect_near_vec(r.precision, ref.at("precision"), "precision");
  expect_near_vec(r.recall, ref.at("recall"), "recall");
  expect_near_vec(r.f1, ref.at("f1"), "f1");
  EXPECT_EQ(r.support, ref.at("support").get<std::vector<int64_t>>());
  for (const char* avg : {"macro", "weighted"}) {
    const std::string a = avg;
    EXPECT_NEAR(a == "macro" ? r.precision_macro : r.precision_weighted,
                ref.at("precision_" + a).get<double>(), kTol)
        << a;
    EXPECT_NEAR(a == "macro" ? r.recall_macro : r.recall_weighted,
                ref.at("recall_" + a).get<double>(), kTol)
        << a;
    EXPECT_NEAR(a == "macro" ? r.f1_macro : r.f1_weighted, ref.at("f1_" + a).get<double>(), kTol)
        << a;
  }
  EXPECT_EQ(r.confusion_matrix,
            ref.at("confusion_matrix").get<std::vector<std::vector<int64_t>>>());
  EXPECT_NEAR(r.roc_auc_ovr_macro, ref.at("roc_auc_ovr_macro").get<double>(), kTol);
  if (ref.at("roc_auc").is_null()) {
    EXPECT_TRUE(std::isnan(r.roc_auc));
  } else {
    EXPECT_NEAR(r.roc_auc, ref.at("roc_auc").get<double>(), kTol);
  }
}

}  // namespace

TEST(Metrics, FixtureHasTheCases) { EXPECT_EQ(case_names().size(), 8u); }

TEST(Metrics, ReportMatchesSklearn) {
  for (const auto& name : case_names()) {
    Case k = load_case(name);
    ClassificationMetrics m = metrics_for(k);
    m.update(k.scores, k.targets);
    expect_matches_sklearn(m.compute(), k);
  }
}

TEST(Metrics, FreeFunctionsMatchSklearn) {
  for (const auto& name : case_names()) {
    Case k = load_case(name);
    SCOPED_TRACE(name);
    EXPECT_NEAR(train::accuracy(k.scores, k.targets), k.ref.at("accuracy").get<double>(), kTol);
    for (const auto& [key, value] : k.ref.at("top_k").items()) {
      EXPECT_NEAR(train::top_k_accuracy(k.scores, k.targets, std::stoll(key)), value.get<double>(),
                  kTol)
          << "k = " << key;
    }
    if (k.c == 2 && !k.ref.at("inputs_are_logits").get<bool>()) {
      EXPECT_NEAR(train::roc_auc_binary(k.scores.select(1, 1).to_vector<double>(),
                                        k.targets.to_vector<int64_t>()),
                  k.ref.at("roc_auc").get<double>(), kTol);
    }
  }
}

TEST(Metrics, BatchingGivesTheSameReport) {
  for (const auto& name : case_names()) {
    Case k = load_case(name);
    ClassificationMetrics whole = metrics_for(k);
    whole.update(k.scores, k.targets);
    const std::string expected = whole.compute().to_json().dump();

    ClassificationMetrics by7 = metrics_for(k);
    for (int64_t b = 0; b < k.n; b += 7) feed(by7, k, b, std::min(b + 7, k.n));
    EXPECT_EQ(by7.compute().to_json().dump(), expected) << name;

    ClassificationMetrics uneven = metrics_for(k);
    feed(uneven, k, 0, 1);
    feed(uneven, k, 1, 1);  // an empty batch changes nothing
    feed(uneven, k, 1, 14);
    feed(uneven, k, 14, k.n);
    EXPECT_EQ(uneven.num_samples(), k.n);
    ClassificationReport r = uneven.compute();
    EXPECT_EQ(r.to_json().dump(), expected) << name;
    expect_matches_sklearn(r, k);
  }
}

TEST(Metrics, ResetForgetsEverything) {
  Case k = load_case("multi3_logits");
  ClassificationMetrics m = metrics_for(k);
  m.update(k.scores, k.targets);
  m.reset();
  EXPECT_EQ(m.num_samples(), 0);
  EXPECT_TRUE(contains(error_of([&] { m.compute(); }), "no samples"));
  m.update(k.scores, k.targets);
  expect_matches_sklearn(m.compute(), k);
}

TEST(Metrics, F32NonContiguousAndI32Inputs) {
  Case k = load_case("multi10_imbalanced");
  // f32 (C,N) transposed to a non-contiguous (N,C); the fixture's argmax survives rounding
  Tensor scores_t = k.scores.to(DType::f32).t().contiguous().t();
  ASSERT_FALSE(scores_t.is_contiguous());
  Tensor targets32 = k.targets.to(DType::i32);
  EXPECT_NEAR(train::accuracy(scores_t, targets32), k.ref.at("accuracy").get<double>(), kTol);
  EXPECT_NEAR(train::top_k_accuracy(scores_t, targets32, 5),
              k.ref.at("top_k").at("5").get<double>(), kTol);
  ClassificationMetrics m = metrics_for(k);
  m.update(scores_t, targets32);
  ClassificationReport r = m.compute();
  EXPECT_EQ(r.confusion_matrix,
            k.ref.at("confusion_matrix").get<std::vector<std::vector<int64_t>>>());
  EXPECT_NEAR(r.f1_macro, k.ref.at("f1_macro").get<double>(), kTol);
}

TEST(Metrics, RocAucBinaryByHand) {
  // sklearn's roc_auc_score docstring example
  EXPECT_DOUBLE_EQ(train::roc_auc_binary({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.75);
  // all scores tied: every pair counts 1/2
  EXPECT_DOUBLE_EQ(train::roc_auc_binary({0.3, 0.3, 0.3}, {0, 1, 1}), 0.5);
  EXPECT_DOUBLE_EQ(train::roc_auc_binary({1, 2, 3, 4}, {0, 0, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(train::roc_auc_binary({4, 3, 2, 1}, {0, 0, 1, 1}), 0.0);
}

TEST(Metrics, SingleClassTargetsGiveNaNAuc) {
  // the report does not throw: the binary AUC is NaN and OvR has no class to average
  ClassificationMetrics m(2);
  m.update(from_vector<double>({0.2, 0.8, 0.6, 0.4}, {2, 2}), from_vector<int64_t>({1, 1}));
  ClassificationReport r = m.compute();
  EXPECT_TRUE(std::isnan(r.roc_auc));
  EXPECT_TRUE(std::isnan(r.roc_auc_ovr_macro));
  EXPECT_DOUBLE_EQ(r.accuracy, 0.5);
  EXPECT_TRUE(r.to_json().at("roc_auc").is_null());
  EXPECT_EQ(r.top_k, 2);  // min(5, C) by default
}

TEST(Metrics, JsonKeys) {
  Case k = load_case("multi3_logits");
  ClassificationMetrics m = metrics_for(k);
  m.update(k.scores, k.targets);
  nlohmann::json j = m.compute().to_json();
  for (const char* key :
       {"num_samples", "accuracy", "top_k", "top_k_accuracy", "precision_macro", "recall_macro",
        "f1_macro", "precision_weighted", "recall_weighted", "f1_weighted", "roc_auc_ovr_macro",
        "roc_auc", "per_class", "confusion_matrix"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.size(), 14u);
  ASSERT_EQ(j.at("per_class").size(), 3u);
  const auto& row = j.at("per_class").at(2);
  EXPECT_EQ(row.at("class").get<int64_t>(), 2);
  EXPECT_NEAR(row.at("precision").get<double>(), k.ref.at("precision").at(2).get<double>(), kTol);
  EXPECT_NEAR(row.at("recall").get<double>(), k.ref.at("recall").at(2).get<double>(), kTol);
  EXPECT_NEAR(row.at("f1").get<double>(), k.ref.at("f1").at(2).get<double>(), kTol);
  EXPECT_EQ(row.at("support").get<int64_t>(), k.ref.at("support").at(2).get<int64_t>());
  EXPECT_EQ(j.at("confusion_matrix"), k.ref.at("confusion_matrix"));
  EXPECT_TRUE(j.at("roc_auc").is_null());
}

TEST(Metrics, TableLayout) {
  // 3 samples by hand: true 0,1,1; predicted 0,1,0
  ClassificationMetrics m(2, false, 1);
  m.update(from_vector<double>({0.9, 0.1, 0.2, 0.8, 0.6, 0.4}, {3, 2}),
           from_vector<int64_t>({0, 1, 1}));
  const std::string table = m.compute().to_table({"cat", "dog"});
  EXPECT_EQ(table,
            "             precision    recall  f1-score   support\n"
            "\n"
            "         cat    0.5000    1.0000    0.6667         1\n"
            "         dog    1.0000    0.5000    0.6667         2\n"
            "\n"
            "    accuracy                        0.6667         3\n"
            "   macro avg    0.7500    0.7500    0.6667         3\n"
            "weighted avg    0.8333    0.6667    0.6667         3\n"
            "\n"
            "top-1 accuracy: 0.6667\n"
            "ROC AUC (one-vs-rest, macro): 1.0000\n"
            "ROC AUC (binary): 1.0000\n"
            "\n"
            "confusion matrix (rows = true class, columns = predicted class)\n"
            "    cat dog\n"
            "cat   1   0\n"
            "dog   1   1\n");
  // without names the classes are numbered
  const std::string numbered = m.compute().to_table();
  EXPECT_TRUE(contains(numbered, "           1    1.0000    0.5000    0.6667         2\n"));
  EXPECT_TRUE(contains(numbered, "  0 1\n0 1 0\n1 1 1\n"));
  EXPECT_TRUE(contains(error_of([&] { m.compute().to_table({"a"}); }), "1 class names for 2"));
}

TEST(Metrics, Errors) {
  Tensor s = from_vector<double>({0.1, 0.2, 0.7, 0.5, 0.3, 0.2}, {2, 3});
  Tensor t = from_vector<int64_t>({2, 0});
  std::string e = error_of([&] { train::accuracy(s, from_vector<int64_t>({2, 3})); });
  EXPECT_TRUE(contains(e, "accuracy: target 3 at index 1 is out of range [0, 3)")) << e;
  e = error_of([&] { train::accuracy(s, from_vector<int64_t>({2, -1})); });
  EXPECT_TRUE(contains(e, "target -1 at index 1")) << e;
  e = error_of([&] { train::accuracy(s, from_vector<int64_t>({0, 1, 2})); });
  EXPECT_TRUE(contains(e, "accuracy: scores [2, 3] and targets [3] have different N (2 vs 3)"))
      << e;
  e = error_of([&] { train::accuracy(s.view({6}), t); });
  EXPECT_TRUE(contains(e, "accuracy: scores must be (N,C), got shape [6]")) << e;
  e = error_of([&] { train::accuracy(s, t.to(DType::f32)); });
  EXPECT_TRUE(contains(e, "targets must be i64 or i32, got f32")) << e;
  e = error_of([&] { train::top_k_accuracy(s, t, 4); });
  EXPECT_TRUE(contains(e, "top_k_accuracy: k = 4 must be in [1, C] with C = 3")) << e;
  e = error_of([&] { train::top_k_accuracy(s, t, 0); });
  EXPECT_TRUE(contains(e, "k = 0")) << e;
  e = error_of([&] { train::roc_auc_binary({0.1, 0.2}, {1, 1}); });
  EXPECT_TRUE(contains(e, "roc_auc_binary: needs both classes, got 2 positive and 0 negative"))
      << e;
  e = error_of([&] { train::roc_auc_binary({0.1, 0.2}, {0, 0}); });
  EXPECT_TRUE(contains(e, "got 0 positive and 2 negative")) << e;
  e = error_of([&] { train::roc_auc_binary({0.1, 0.2}, {0, 2}); });
  EXPECT_TRUE(contains(e, "roc_auc_binary: label 2 at index 1 is not 0 or 1")) << e;
  e = error_of([&] { train::roc_auc_binary({0.1}, {0, 1}); });
  EXPECT_TRUE(contains(e, "roc_auc_binary: 1 scores and 2 labels differ in length")) << e;
  e = error_of([&] { train::roc_auc_binary({0.1, NAN}, {0, 1}); });
  EXPECT_TRUE(contains(e, "score nan at index 1 is not finite")) << e;

  e = error_of([&] { ClassificationMetrics(3, false, 4); });
  EXPECT_TRUE(contains(e, "ClassificationMetrics: k = 4 must be in [1, C] with C = 3")) << e;
  e = error_of([&] { ClassificationMetrics(1); });
  EXPECT_TRUE(contains(e, "num_classes must be >= 2, got 1")) << e;
  ClassificationMetrics m(4);
  e = error_of([&] { m.update(s, t); });
  EXPECT_TRUE(contains(e,
                       "ClassificationMetrics::update: scores [2, 3] have 3 classes, "
                       "expected num_classes = 4"))
      << e;
  ClassificationMetrics m3(3);
  e = error_of([&] { m3.update(s, from_vector<int64_t>({5, 0})); });
  EXPECT_TRUE(contains(e, "ClassificationMetrics::update: target 5 at index 0")) << e;
  EXPECT_EQ(m3.num_samples(), 0);  // a refused batch adds nothing
  e = error_of([&] { m3.update(from_vector<double>({0.1, NAN, 0.2}, {1, 3}), t.slice(0, 0, 1)); });
  EXPECT_TRUE(contains(e, "score nan at row 0, class 1 is not finite")) << e;
  e = error_of([&] { m3.compute(); });
  EXPECT_TRUE(contains(e, "ClassificationMetrics::compute: no samples were added")) << e;
}
