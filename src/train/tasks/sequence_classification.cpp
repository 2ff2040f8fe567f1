// The sequence-classification task: tables read and tokenized once, batches of indices in a
// permutation keyed by (seed, epoch) and padded to their longest text, so a resumed run sees
// the batches of an uninterrupted one without saving loader state.
#include "moxing/train/tasks/sequence_classification.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/data/dataset.h"
#include "moxing/io/checkpoint.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"
#include "moxing/ops/softmax.h"
#include "moxing/optim/param_groups.h"
#include "moxing/train/epoch_batches.h"

namespace moxing::train {

namespace fs = std::filesystem;

std::string problem_type_of(models::SequenceClassifier& model) {
  std::string p = model.problem_type();
  if (!p.empty()) return p;
  return model.num_labels() > 1 ? kSingleLabel : kRegression;
}

namespace {

// the targets of examples idx as a tensor: i64 (B) classes, or f32 (B,K) / (B) values
Tensor batch_targets(const LabelledTexts& d, std::span<const int64_t> idx,
                     const std::string& problem_type) {
  const auto B = static_cast<int64_t>(idx.size());
  if (problem_type == kSingleLabel) {
    std::vector<int64_t> t;
    for (int64_t i : idx) t.push_back(d.labels[static_cast<size_t>(i)]);
    return from_vector(t, {B});
  }
  std::vector<float> t;
  for (int64_t i : idx) {
    const auto& v = d.targets[static_cast<size_t>(i)];
    t.insert(t.end(), v.begin(), v.end());
  }
  const auto K = static_cast<int64_t>(d.targets[static_cast<size_t>(idx[0])].size());
  return problem_type == kRegression && K == 1 ? from_vector(t, {B}) : from_vector(t, {B, K});
}

// the loss transformers' BertForSequenceClassification computes for its problem type, with
// cross-entropy weighted per class (torch's weight=: a weighted mean) when weights are given
Tensor classification_loss(const Tensor& logits, const Tensor& target,
                           const std::string& problem_type, const Tensor& weights) {
  if (problem_type == kRegression) {
    return mse_loss(target.dim() == 1 ? logits.reshape({logits.size(0)}) : logits, target);
  }
  if (problem_type == kMultiLabel) return binary_cross_entropy_with_logits(logits, target);
  if (!weights.defined()) return cross_entropy(logits, target);
  Tensor per = cross_entropy(logits, target, Reduction::none);
  Tensor w = index_select(weights, 0, target);
  return div(sum(mul(per, w)), sum(w));
}

Tensor weights_tensor(const std::vector<double>& w) {
  if (w.empty()) return Tensor();
  std::vector<float> f(w.begin(), w.end());
  return from_vector(f, {static_cast<int64_t>(f.size())});
}

double safe_ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

}  // namespace

TextEvalResult evaluate_text_classifier(models::SequenceClassifier& model,
                                        const LabelledTexts& data, const std::string& problem_type,
                                        int32_t pad_id, int64_t max_batch,
                                        const std::vector<double>& class_weights) {
  MOXING_CHECK(data.size() > 0, "evaluate: {} holds no examples", data.path);
  MOXING_CHECK(data.encodings.size() == data.texts.size(), "evaluate: {} is not encoded",
               data.path);
  nn::Module& module = model.module();
  const bool was_training = module.is_training();
  module.eval();
  NoGradGuard no_grad;
  const int64_t K = model.num_labels();
  const Tensor weights = weights_tensor(class_weights);
  std::optional<ClassificationMetrics> cls;
  if (problem_type == kSingleLabel) cls.emplace(K, /*inputs_are_logits=*/true);
  double loss_sum = 0;
  // multi-label counts per label; regression sums
  std::vector<double> tp(static_cast<size_t>(K)), fp(tp.size()), fn(tp.size());
  double exact = 0, se = 0, ae = 0, y_sum = 0, y_sq = 0;
  int64_t n_values = 0;
  for (const std::vector<int64_t>& idx : length_batches(data.encodings, max_batch)) {
    models::EncoderInputs in = pad_batch(data.encodings, idx, pad_id);
    Tensor logits = model.classify(in).to(DType::f32).contiguous();  // (B,K)
    Tensor target = batch_targets(data, idx, problem_type);
    const auto B = static_cast<double>(idx.size());
    loss_sum +=
        classification_loss(logits, target, problem_type, weights).to(DType::f64).item<double>() *
        B;
    if (cls) {
      cls->update(logits, target);
      continue;
    }
    const float* l = logits.data<float>();
    Tensor tc = target.contiguous();
    const float* t = tc.data<float>();
    const int64_t rows = static_cast<int64_t>(idx.size());
    for (int64_t r = 0; r < rows; ++r) {
      bool all_right = true;
      for (int64_t k = 0; k < K; ++k) {
        const float x = l[r * K + k], y = t[r * K + k];
        if (problem_type == kRegression) {
          se += (x - y) * (x - y);
          ae += std::abs(x - y);
          y_sum += y;
          y_sq += static_cast<double>(y) * y;
          ++n_values;
          continue;
        }
        const bool pred = x >= 0.0f, truth = y >= 0.5f;  // sigmoid(x) >= 0.5
        tp[static_cast<size_t>(k)] += pred && truth;
        fp[static_cast<size_t>(k)] += pred && !truth;
        fn[static_cast<size_t>(k)] += !pred && truth;
        all_right = all_right && pred == truth;
      }
      exact += all_right;
    }
  }
  module.train(was_training);
  const auto N = static_cast<double>(data.size());
  TextEvalResult r;
  r.metrics["loss"] = loss_sum / N;
  if (cls) {
    ClassificationReport rep = cls->compute();
    r.metrics["accuracy"] = rep.accuracy;
    r.metrics["precision_macro"] = rep.precision_macro;
    r.metrics["recall_macro"] = rep.recall_macro;
    r.metrics["f1_macro"] = rep.f1_macro;
    const double auc = K == 2 ? rep.roc_auc : rep.roc_auc_ovr_macro;
    if (std::isfinite(auc)) r.metrics["roc_auc"] = auc;
    r.report = std::move(rep);
  } else if (problem_type == kRegression) {
    const auto n = static_cast<double>(n_values);
    const double ss_tot = y_sq - y_sum * y_sum / n;
    r.metrics["mse"] = se / n;
    r.metrics["mae"] = ae / n;
    if (ss_tot > 0) r.metrics["r2"] = 1.0 - se / ss_tot;
  } else {
    double p_sum = 0, r_sum = 0, f_sum = 0, TP = 0, FP = 0, FN = 0;
    for (size_t k = 0; k < tp.size(); ++k) {
      const double p = safe_ratio(tp[k], tp[k] + fp[k]), rc = safe_ratio(tp[k], tp[k] + fn[k]);
      p_sum += p;
      r_sum += rc;
      f_sum += safe_ratio(2 * tp[k], 2 * tp[k] + fp[k] + fn[k]);
      TP += tp[k];
      FP += fp[k];
      FN += fn[k];
    }
    const auto Kd = static_cast<double>(K);
    r.metrics["accuracy"] = exact / N;
    r.metrics["precision_macro"] = p_sum / Kd;
    r.metrics["recall_macro"] = r_sum / Kd;
    r.metrics["f1_macro"] = f_sum / Kd;
    r.metrics["f1_micro"] = safe_ratio(2 * TP, 2 * TP + FP + FN);
  }
  return r;
}

namespace {

// what a classifier needs of its data for a run or an evaluation: the tokenizer folder
std::string tokenizer_folder(const Config& config) {
  const std::string t = config.data.options<CsvDataOptions>().tokenizer;
  if (!t.empty() && t != "char") return t;  // "char": what older run configs hold for none
  MOXING_CHECK(!config.model.pretrained.empty(),
               "config: [data] tokenizer must name a tokenizer folder (one `moxing tokenizer "
               "train` wrote, or a model's) when [model] pretrained is not set");
  return config.model.pretrained;
}

std::string configured_problem_type(const Config& config) {
  nlohmann::json fields = config.model.resolved();
  if (fields.contains("problem_type") && fields["problem_type"].is_string()) {
    return fields["problem_type"].get<std::string>();
  }
  return kSingleLabel;
}

class SequenceClassificationTask : public Task {
 public:
  explicit SequenceClassificationTask(const Config& config) : config_(config) {}

  void check_data_config() const override {
    check_choice("[data] name", config_.data.name, {"csv"});
    MOXING_CHECK(!config_.data.path.empty(),
                 "config: [data] path is needed: a folder holding train.csv (and validation.csv, "
                 "test.csv) or one .csv/.tsv file");
    const auto d = config_.data.options<CsvDataOptions>();
    MOXING_CHECK(d.max_length >= 0, "config: [data] max_length must be >= 0, got {}", d.max_length);
    for (double w : d.class_weights) {
      MOXING_CHECK(std::isfinite(w) && w > 0, "config: [data] class_weights must be > 0, got {}",
                   w);
    }
    const std::string p = configured_problem_type(config_);
    check_choice("[model] problem_type", p, {kSingleLabel, kMultiLabel, kRegression});
    MOXING_CHECK(d.class_weights.empty() || p == kSingleLabel,
                 "config: [data] class_weights apply to single-label classification only");
  }

  std::optional<nlohmann::json> data_fields() const override {
    return models::config_to_json(config_.data.options<CsvDataOptions>());
  }

  nlohmann::json setup_data(Run& run) override {
    opt_ = config_.data.options<CsvDataOptions>();
    problem_type_ = configured_problem_type(config_);
    data_ = load_labelled_data(config_, problem_type_);
    const std::string folder = tokenizer_folder(config_);
    tokenizer_ = std::shared_ptr<tokenizers::Tokenizer>(tokenizers::load_tokenizer(folder));
    pad_id_ = pad_token_id(*tokenizer_);
    run.note(fmt::format("data: {} training, {} validation, {} test examples; labels: {}",
                         data_.train.size(), data_.val.size(), data_.test.size(),
                         fmt::join(data_.labels, ", ")));
    const auto K = static_cast<int64_t>(data_.labels.size());
    nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
    for (int64_t i = 0; i < K; ++i) {
      id2label[std::to_string(i)] = data_.labels[static_cast<size_t>(i)];
      label2id[data_.labels[static_cast<size_t>(i)]] = i;
    }
    nlohmann::json facts = {{"num_labels", problem_type_ == kRegression ? 1 : K},
                            {"id2label", id2label},
                            {"label2id", label2id},
                            {"pad_token_id", pad_id_}};
    // a pretrained model keeps its embedding table: the tokenizer is the model's own
    if (config_.model.pretrained.empty()) facts["vocab_size"] = tokenizer_->vocab_size();
    return facts;
  }

  void configure(Run& run, models::Model model) override {
    model_ = &model.expect<models::SequenceClassifier>("a sequence classifier");
    const std::string p = problem_type_of(*model_);
    MOXING_CHECK(p == problem_type_ || model_->problem_type().empty(),
                 "the model's problem_type is {} but the run's is {}", p, problem_type_);
    // the window: [data] max_length, at most the model's positions
    int64_t window = 512;
    if (auto* enc = model.as<models::TextEncoder>()) window = enc->max_positions();
    opt_ = config_.data.options<CsvDataOptions>();  // also for a memory estimate
    max_length_ = opt_.max_length > 0 ? opt_.max_length : window;
    MOXING_CHECK(max_length_ <= window,
                 "config: [data] max_length = {} is longer than the model's window ({} positions)",
                 max_length_, window);
    if (tokenizer_ != nullptr) {  // not for a memory estimate, which reads no data
      for (LabelledTexts* s : {&data_.train, &data_.val, &data_.test}) {
        s->encode(*tokenizer_, max_length_, opt_.truncate);
        if (s->truncated > 0) {
          run.note(
              fmt::format("note: {} of the {} texts of {} are longer than {} tokens and were "
                          "cut ([data] max_length)",
                          s->truncated, s->size(), s->path, max_length_));
        }
      }
      batches_ =
          EpochBatches(data_.train.size(), config_.data.batch_size, config_.train.grad_accum);
    }
    weights_ = weights_tensor(opt_.class_weights);
    std::vector<optim::ParamGroup> groups =
        optim::decay_groups(model.module->named_parameters(), config_.optim.weight_decay);
    run.add_model("model", std::move(model));
    run.add_optimizer("optimizer", "model", std::move(groups));
  }

  int64_t steps_per_epoch() const override { return batches_.steps_per_epoch(); }
  int64_t micro_batches(int64_t step) const override { return batches_.micro_batches(step); }

  StepOutput training_step(Run& run, int64_t step, int64_t micro) override {
    (void)run;
    std::span<const int64_t> idx =
        batches_.items(step, micro, static_cast<uint64_t>(config_.train.seed));
    return step_on(pad_batch(data_.train.encodings, idx, pad_id_),
                   batch_targets(data_.train, idx, problem_type_));
  }

  nlohmann::json data_fields_from_config() const override {
    nlohmann::json out = nlohmann::json::object();
    const auto labels = config_.data.options<CsvDataOptions>().labels;
    if (!labels.empty()) out["num_labels"] = static_cast<int64_t>(labels.size());
    return out;
  }

  std::optional<StepOutput> meta_step(Run& run) override {
    (void)run;
    const int64_t B = config_.data.batch_size, T = max_length_;
    models::EncoderInputs in{empty({B, T}, DType::i64), empty({B, T}, DType::i64),
                             empty({B, T}, DType::i64)};
    Tensor target =
        problem_type_ == kSingleLabel ? empty({B}, DType::i64) : empty({B, model_->num_labels()});
    return step_on(in, target);
  }

  std::optional<Metrics> validate(Run& run) override {
    if (data_.val.size() == 0) return std::nullopt;
    TextEvalResult r = evaluate_text_classifier(*model_, data_.val, problem_type_, pad_id_,
                                                config_.data.eval_batch_size, opt_.class_weights);
    run.note(fmt::format("step {}: val {}", run.step(), describe(r.metrics)));
    return r.metrics;
  }

  std::optional<Metrics> test(Run& run) override {
    if (data_.test.size() == 0) return std::nullopt;
    TextEvalResult r = evaluate_text_classifier(*model_, data_.test, problem_type_, pad_id_,
                                                config_.data.eval_batch_size, opt_.class_weights);
    nlohmann::json report = r.report ? r.report->to_json() : nlohmann::json::object();
    for (const auto& [k, v] : r.metrics) report[k] = v;
    report["labels"] = data_.labels;
    write_text_file_atomic(run.out_dir() + "/test_metrics.json", report.dump(2) + "\n");
    run.note(fmt::format("test: {}", describe(r.metrics)));
    return r.metrics;
  }

  nlohmann::json state() const override {
    return {{"class_names", data_.labels}, {"problem_type", problem_type_}};
  }

  void save_extras(const std::string& dir) const override { tokenizer_->save(dir); }

  EvalReport evaluate(const LoadedRun& run, const std::string& data_path) override {
    Config config = run.config;
    if (!data_path.empty()) config.data.path = data_path;
    auto& model = run.model.expect<models::SequenceClassifier>("a sequence classifier");
    const std::string p = problem_type_of(model);
    std::vector<std::string> labels = model.labels();
    config.data.fields["labels"] = p == kRegression ? std::vector<std::string>{} : labels;
    const auto opt = config.data.options<CsvDataOptions>();
    LabelledData data = load_labelled_data(config, p);
    LabelledTexts& split = data.test.size() > 0 ? data.test : data.val;
    const std::string split_name = data.test.size() > 0 ? "test" : "val";
    MOXING_CHECK(split.size() > 0, "{} has neither a test nor a validation split",
                 config.data.path);
    auto tokenizer = tokenizers::load_tokenizer(run.checkpoint_dir);
    int64_t window = 512;
    if (auto* enc = run.model.as<models::TextEncoder>()) window = enc->max_positions();
    const int64_t max_length = opt.max_length > 0 ? opt.max_length : window;
    split.encode(*tokenizer, max_length, opt.truncate);
    TextEvalResult r = evaluate_text_classifier(model, split, p, pad_token_id(*tokenizer),
                                                config.data.eval_batch_size, opt.class_weights);
    EvalReport out;
    out.json = r.report ? r.report->to_json() : nlohmann::json::object();
    for (const auto& [k, v] : r.metrics) out.json[k] = v;
    out.json["split"] = split_name;
    out.json["path"] = split.path;
    out.json["checkpoint"] = run.checkpoint_dir;
    out.text =
        fmt::format("{} on the {} split ({}, {} examples), loss {:.4f}\n\n", run.checkpoint_dir,
                    split_name, split.path, split.size(), r.metrics.at("loss"));
    if (r.report) {
      out.text += r.report->to_table(labels);
    } else {
      for (const auto& [k, v] : r.metrics) out.text += fmt::format("{:<16}{:.4f}\n", k, v);
    }
    return out;
  }

 private:
  StepOutput step_on(const models::EncoderInputs& in, const Tensor& target) {
    Tensor logits = model_->classify(in);  // (B,K)
    StepOutput out;
    out.loss = classification_loss(logits, target, problem_type_, weights_);
    out.items = in.input_ids.size(0);
    if (problem_type_ == kSingleLabel) {
      out.sums.emplace_back("accuracy", sum(eq(argmax(logits.detach(), 1), target).to(DType::f64)));
    }
    return out;
  }

  static std::string describe(const Metrics& m) {
    std::string s;
    for (const char* k : {"loss", "accuracy", "f1_macro", "roc_auc", "mse", "r2"}) {
      auto it = m.find(k);
      if (it != m.end()) s += fmt::format("{}{} {:.4f}", s.empty() ? "" : ", ", k, it->second);
    }
    return s;
  }

  const Config& config_;
  CsvDataOptions opt_;
  std::string problem_type_ = kSingleLabel;
  LabelledData data_;
  std::shared_ptr<tokenizers::Tokenizer> tokenizer_;
  int32_t pad_id_ = 0;
  int64_t max_length_ = 128;
  EpochBatches batches_;
  models::SequenceClassifier* model_ = nullptr;
  Tensor weights_;
};

std::unique_ptr<Task> make_sequence_classification_task(const Config& config) {
  return std::make_unique<SequenceClassificationTask>(config);
}

}  // namespace

MOXING_REGISTER_TASK("sequence-classification", make_sequence_classification_task);

}  // namespace moxing::train
