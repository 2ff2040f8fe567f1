// The causal-lm task: token files written once into the run folder, windows keyed by
// (seed, step) so that no loader state needs saving, AdamW without decay on biases and norms,
// validation against the unigram baseline, checkpoints that carry the tokenizer.
#include "moxing/train/tasks/causal_lm.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <optional>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/io/checkpoint.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/reduction.h"
#include "moxing/optim/param_groups.h"
#include "moxing/train/lm_data.h"
#include "moxing/train/task.h"
#include "moxing/train/trainer.h"

namespace moxing::train {

namespace fs = std::filesystem;

int64_t lm_window(const models::CausalLM& model, int64_t max_length) {
  const int64_t context = model.context_length();
  MOXING_CHECK(max_length >= 0, "config: [data] max_length must be >= 0, got {}", max_length);
  MOXING_CHECK(max_length > 0 || context > 0,
               "config: [data] max_length is needed: this model has no context limit, so the "
               "training windows need a length (e.g. max_length = 128)");
  MOXING_CHECK(context == 0 || max_length <= context,
               "config: [data] max_length = {} is longer than the model's context ({} positions)",
               max_length, context);
  return max_length > 0 ? max_length : context;
}

LMEvalResult evaluate_lm(models::CausalLM& model, const TokenFile& tokens, int64_t batch,
                         int64_t window) {
  const int64_t T = window;
  MOXING_CHECK(T > 0, "evaluate: the window must be positive, got {}", T);
  const int64_t windows = (tokens.size() - 1) / T;
  MOXING_CHECK(windows > 0, "evaluate: {} has {} tokens, fewer than one window of {} + 1 = {}",
               tokens.path(), tokens.size(), T, T + 1);
  nn::Module& module = model.module();
  bool was_training = module.is_training();
  module.eval();
  NoGradGuard no_grad;
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t first = 0; first < windows; first += batch) {
    int64_t count = std::min(batch, windows - first);
    Tensor x, y;
    sequential_windows(tokens, T, first, count, x, y);
    Tensor logits = model.lm_head(model.hidden_states(x));  // (B,T,V)
    Tensor flat = logits.reshape({count * T, logits.size(2)});
    Tensor target = y.reshape({count * T});
    loss_sum += cross_entropy(flat, target, Reduction::sum).to(DType::f64).item<double>();
    Tensor pred = argmax(flat, 1);
    const int64_t* p = pred.contiguous().data<int64_t>();
    const int64_t* t = target.contiguous().data<int64_t>();
    for (int64_t i = 0; i < count * T; ++i) correct += p[i] == t[i];
  }
  module.train(was_training);
  LMEvalResult r;
  r.tokens = windows * T;
  r.loss = loss_sum / static_cast<double>(r.tokens);
  r.accuracy = static_cast<double>(correct) / static_cast<double>(r.tokens);
  return r;
}

LoadedLM load_language_model(const std::string& path) {
  LoadedRun run = load_run(path);
  LoadedLM m;
  m.dir = run.checkpoint_dir;
  m.model = std::move(run.model);
  m.lm = &m.model.expect<models::CausalLM>("a causal language model");
  m.tokenizer = std::shared_ptr<tokenizers::Tokenizer>(tokenizers::load_tokenizer(m.dir));
  MOXING_CHECK(m.tokenizer->vocab_size() <= m.lm->vocab_size(),
               "{}: the tokenizer has {} tokens but the model only {}", m.dir,
               m.tokenizer->vocab_size(), m.lm->vocab_size());
  return m;
}

namespace {

class CausalLMTask : public Task {
 public:
  explicit CausalLMTask(const Config& config) : config_(config) {}

  std::string items_name() const override { return "tokens"; }

  void check_data_config() const override {
    check_choice("[data] name", config_.data.name, {"text"});
    const auto d = config_.data.options<CausalTextOptions>();
    check_text_options(d);
    MOXING_CHECK(d.max_length >= 0, "config: [data] max_length must be >= 0, got {}", d.max_length);
    MOXING_CHECK(d.tokenizer != "bpe" || d.vocab_size > 256,
                 "config: [data] tokenizer \"bpe\" needs vocab_size > 256 (the byte tokens and "
                 "merges), got {}",
                 d.vocab_size);
  }

  std::optional<nlohmann::json> data_fields() const override {
    return models::config_to_json(config_.data.options<CausalTextOptions>());
  }

  nlohmann::json setup_data(Run& run) override {
    data_ = prepare_lm_data(config_, config_.data.options<CausalTextOptions>(), run.out_dir(),
                            run.verbose());
    if (data_.val != nullptr) {
      run.note(fmt::format(
          "baseline: the validation split's unigram entropy is {:.4f} nats (perplexity {:.1f}); "
          "the model's val loss is compared with it",
          data_.val_unigram_loss, std::exp(data_.val_unigram_loss)));
    }
    return {{"vocab_size", data_.tokenizer->vocab_size()},
            {"bos_token_id", data_.eos_id},
            {"eos_token_id", data_.eos_id}};
  }

  void configure(Run& run, models::Model model) override {
    lm_ = &model.expect<models::CausalLM>("a causal language model");
    T_ = lm_window(*lm_, config_.data.options<CausalTextOptions>().max_length);
    std::vector<optim::ParamGroup> groups =
        optim::decay_groups(model.module->named_parameters(), config_.optim.weight_decay);
    run.add_model("model", std::move(model));
    run.add_optimizer("optimizer", "model", std::move(groups));
  }

  int64_t steps_per_epoch() const override {
    const int64_t tokens_per_step = config_.data.batch_size * T_ * config_.train.grad_accum;
    return std::max<int64_t>(1, (data_.train->size() + tokens_per_step - 1) / tokens_per_step);
  }

  StepOutput training_step(Run& run, int64_t step, int64_t micro) override {
    (void)run;
    Tensor x, y;
    sample_windows(*data_.train, config_.data.batch_size, T_,
                   static_cast<uint64_t>(config_.train.seed),
                   static_cast<uint64_t>(step * config_.train.grad_accum + micro), x, y);
    return step_on(x, y);
  }

  nlohmann::json data_fields_from_config() const override {
    const auto d = config_.data.options<CausalTextOptions>();
    if (d.tokenizer == "char" || d.tokenizer == "bpe") {
      // trained on the data, <|endoftext|> first; bpe's size is the config's, char's is a cap
      // (0: every character the data has)
      nlohmann::json out = {{"bos_token_id", 0}, {"eos_token_id", 0}};
      if (d.vocab_size > 0) out["vocab_size"] = d.vocab_size;
      return out;
    }
    std::error_code ec;
    if (!fs::exists(d.tokenizer, ec)) return nlohmann::json::object();
    auto tokenizer = tokenizers::load_tokenizer(d.tokenizer);
    nlohmann::json out = {{"vocab_size", tokenizer->vocab_size()}};
    if (auto eos = tokenizer->eos_token_id()) out["bos_token_id"] = out["eos_token_id"] = *eos;
    return out;
  }

  std::optional<StepOutput> meta_step(Run& run) override {
    (void)run;
    const int64_t B = config_.data.batch_size;
    return step_on(empty({B, T_}, DType::i64), empty({B, T_}, DType::i64));
  }

  std::optional<Metrics> validate(Run& run) override {
    if (data_.val == nullptr) return std::nullopt;
    LMEvalResult r = evaluate_lm(*lm_, *data_.val, config_.data.batch_size, T_);
    run.note(fmt::format(
        "step {}: val loss {:.4f} (perplexity {:.1f}, {:.3f} x the unigram baseline), accuracy "
        "{:.4f}",
        run.step(), r.loss, std::exp(r.loss), r.loss / data_.val_unigram_loss, r.accuracy));
    return Metrics{{"loss", r.loss},
                   {"accuracy", r.accuracy},
                   {"perplexity", std::exp(r.loss)},
                   {"baseline_loss", data_.val_unigram_loss}};
  }

  nlohmann::json state() const override {
    if (data_.val == nullptr) return {{"baseline_loss", nullptr}};
    return {{"baseline_loss", data_.val_unigram_loss}};
  }

  void save_extras(const std::string& dir) const override { data_.tokenizer->save(dir); }

  EvalReport evaluate(const LoadedRun& run, const std::string& data_path) override {
    (void)data_path;
    models::CausalLM& lm = run.model.expect<models::CausalLM>("a causal language model");
    auto tokenizer = tokenizers::load_tokenizer(run.checkpoint_dir);
    RunValTokens run_val = open_run_val_tokens(run, tokenizer->vocab_size());
    const TokenFile& val = *run_val.tokens;
    const int64_t window = lm_window(lm, run.config.data.options<CausalTextOptions>().max_length);
    LMEvalResult r = evaluate_lm(lm, val, std::max<int64_t>(1, run.config.data.batch_size), window);
    double baseline = run_val.unigram_loss;
    EvalReport out;
    out.json = {{"split", "val"},
                {"tokens", r.tokens},
                {"loss", r.loss},
                {"perplexity", std::exp(r.loss)},
                {"accuracy", r.accuracy},
                {"baseline_loss", baseline},
                {"checkpoint", run.checkpoint_dir}};
    out.text = fmt::format(
        "{} on the val split ({} tokens)\nloss        {:.4f}\nperplexity  {:.2f}\naccuracy    "
        "{:.4f} (next token)\nbaseline    {:.4f} (unigram entropy; loss / baseline = {:.3f})\n",
        run.checkpoint_dir, r.tokens, r.loss, std::exp(r.loss), r.accuracy, baseline,
        r.loss / baseline);
    return out;
  }

 private:
  // the loss of windows x and their next tokens y, both (B,T)
  StepOutput step_on(const Tensor& x, const Tensor& y) {
    const int64_t n = x.numel();
    Tensor logits = lm_->lm_head(lm_->hidden_states(x));  // (B,T,V)
    StepOutput out;
    out.loss = cross_entropy(logits.reshape({n, logits.size(2)}), y.reshape({n}));
    out.items = n;
    return out;
  }

  const Config& config_;
  LMData data_;
  models::CausalLM* lm_ = nullptr;
  int64_t T_ = 0;
};

std::unique_ptr<Task> make_causal_lm_task(const Config& config) {
  return std::make_unique<CausalLMTask>(config);
}

}  // namespace

MOXING_REGISTER_TASK("causal-lm", make_causal_lm_task);

}  // namespace moxing::train
