// The "masked-lm" task (BERT pretraining): the documents of [data] "text" files (tables too)
// tokenized once into the run folder's token files (lm_data.h), cut into blocks of
// max_length - 2 tokens that become [CLS] block [SEP], masked anew for every batch
// (mlm_probability of the tokens, 80/10/10 as BERT) from a stream keyed by (seed, step), so a
// resumed run masks as an uninterrupted one. Any model that is a models::MaskedLM trains.
#include <fmt/format.h>

#include <cmath>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/data/dataset.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/reduction.h"
#include "moxing/optim/param_groups.h"
#include "moxing/train/epoch_batches.h"
#include "moxing/train/lm_data.h"
#include "moxing/train/task.h"
#include "moxing/train/text_data.h"

namespace moxing::train {

namespace {

/// The [data] keys of "text" for masked-LM training: those of causal LMs (TextDataOptions),
/// a tokenizer that has [CLS] [SEP] [MASK], and the masking.
struct MaskedTextOptions : TextDataOptions {
  /// tokens per block, [CLS] and [SEP] included (0: the model's window)
  int64_t max_length = 0;
  /// the share of tokens to predict (80% of them [MASK], 10% random, 10% kept)
  double mlm_probability = 0.15;

  MaskedTextOptions() { tokenizer = "wordpiece"; }

  template <class F>
  void visit(F&& f) {
    TextDataOptions::visit(f);
    f("max_length", max_length);
    f("mlm_probability", mlm_probability);
  }
};

// the token ids BERT's blocks and masking need
struct MaskIds {
  int64_t cls = 0, sep = 0, mask = 0, vocab = 0;
  std::vector<char> special;
};

MaskIds mask_ids(const tokenizers::Tokenizer& t, const std::string& where) {
  MaskIds m;
  auto need = [&](const char* name) {
    auto id = t.token_to_id(name);
    MOXING_CHECK(id.has_value(),
                 "{}: the tokenizer has no {} token, which masked-LM training needs (a WordPiece "
                 "tokenizer: [data] tokenizer = \"wordpiece\" or a BERT folder)",
                 where, name);
    return static_cast<int64_t>(*id);
  };
  m.cls = need("[CLS]");
  m.sep = need("[SEP]");
  m.mask = need("[MASK]");
  m.vocab = t.vocab_size();
  m.special.resize(static_cast<size_t>(m.vocab));
  for (int64_t i = 0; i < m.vocab; ++i)
    m.special[static_cast<size_t>(i)] = t.is_special(static_cast<int32_t>(i));
  return m;
}

// blocks [first, first + count) of tokens as [CLS] block [SEP] rows: ids (count * (L + 2))
std::vector<int64_t> read_blocks(const TokenFile& tokens, std::span<const int64_t> blocks,
                                 int64_t L, const MaskIds& m) {
  std::vector<int64_t> ids;
  ids.reserve(blocks.size() * static_cast<size_t>(L + 2));
  std::vector<int64_t> buf(static_cast<size_t>(L));
  for (int64_t b : blocks) {
    tokens.read(b * L, L, buf.data());
    ids.push_back(m.cls);
    ids.insert(ids.end(), buf.begin(), buf.end());
    ids.push_back(m.sep);
  }
  return ids;
}

// the flat positions of the masked tokens and their original ids, both i64 (N)
std::pair<Tensor, Tensor> masked_positions(const std::vector<int64_t>& labels) {
  std::vector<int64_t> pos, target;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0) continue;
    pos.push_back(static_cast<int64_t>(i));
    target.push_back(labels[i]);
  }
  const auto n = static_cast<int64_t>(pos.size());
  return {from_vector(pos, {n}), from_vector(target, {n})};
}

struct MLMEval {
  double loss = 0, accuracy = 0;
  int64_t targets = 0;
};

// loss and accuracy over the masked tokens of every block of tokens, masked by a fixed stream
MLMEval evaluate_mlm(models::MaskedLM& model, const TokenFile& tokens, int64_t L, int64_t batch,
                     const MaskIds& m, double p, uint64_t seed) {
  const int64_t blocks = tokens.size() / L;
  MOXING_CHECK(blocks > 0, "evaluate: {} has {} tokens, fewer than one block of {}", tokens.path(),
               tokens.size(), L);
  nn::Module& module = model.module();
  const bool was_training = module.is_training();
  module.eval();
  NoGradGuard no_grad;
  double loss_sum = 0;
  int64_t correct = 0, n = 0;
  for (int64_t first = 0; first < blocks; first += batch) {
    const int64_t count = std::min(batch, blocks - first);
    std::vector<int64_t> which(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) which[static_cast<size_t>(i)] = first + i;
    std::vector<int64_t> ids = read_blocks(tokens, which, L, m);
    std::vector<int64_t> labels =
        mask_tokens(ids, m.special, m.mask, m.vocab, p,
                    Generator(data::mix_seed(seed, 0x9e37 + static_cast<uint64_t>(first))));
    const int64_t T = L + 2;
    auto [positions, targets] = masked_positions(labels);
    Tensor logits =
        model.mlm_logits_at({from_vector(ids, {count, T}), Tensor(), Tensor()}, positions);
    loss_sum += cross_entropy(logits, targets, Reduction::sum).to(DType::f64).item<double>();
    std::vector<int64_t> pred = argmax(logits, 1).contiguous().to_vector<int64_t>();
    std::vector<int64_t> truth = targets.to_vector<int64_t>();
    for (size_t i = 0; i < truth.size(); ++i) correct += pred[i] == truth[i];
    n += static_cast<int64_t>(truth.size());
  }
  module.train(was_training);
  MLMEval r;
  r.targets = n;
  r.loss = loss_sum / static_cast<double>(std::max<int64_t>(n, 1));
  r.accuracy = static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(n, 1));
  return r;
}

class MaskedLMTask : public Task {
 public:
  explicit MaskedLMTask(const Config& config) : config_(config) {}

  std::string items_name() const override { return "tokens"; }

  void check_data_config() const override {
    check_choice("[data] name", config_.data.name, {"text"});
    const auto d = config_.data.options<MaskedTextOptions>();
    check_text_options(d);
    MOXING_CHECK(d.tokenizer != "char" && d.tokenizer != "bpe",
                 "config: [data] tokenizer for masked-LM training is \"wordpiece\" (trained on the "
                 "data to vocab_size) or a tokenizer folder with [CLS] [SEP] [MASK], got \"{}\"",
                 d.tokenizer);
    MOXING_CHECK(d.mlm_probability > 0 && d.mlm_probability < 1,
                 "config: [data] mlm_probability must be in (0, 1), got {}", d.mlm_probability);
    MOXING_CHECK(d.max_length == 0 || d.max_length >= 3,
                 "config: [data] max_length must be 0 (the model's window) or >= 3, got {}",
                 d.max_length);
  }

  std::optional<nlohmann::json> data_fields() const override {
    return models::config_to_json(config_.data.options<MaskedTextOptions>());
  }

  nlohmann::json setup_data(Run& run) override {
    opt_ = config_.data.options<MaskedTextOptions>();
    data_ = prepare_lm_data(config_, opt_, run.out_dir(), run.verbose());
    ids_ = mask_ids(*data_.tokenizer, "[data] tokenizer");
    nlohmann::json facts = {{"pad_token_id", pad_token_id(*data_.tokenizer)}};
    if (config_.model.pretrained.empty()) facts["vocab_size"] = data_.tokenizer->vocab_size();
    return facts;
  }

  void configure(Run& run, models::Model model) override {
    mlm_ = &model.expect<models::MaskedLM>("a masked language model");
    int64_t window = 512;
    if (auto* enc = model.as<models::TextEncoder>()) window = enc->max_positions();
    opt_ = config_.data.options<MaskedTextOptions>();  // also for a memory estimate
    const int64_t T = opt_.max_length > 0 ? opt_.max_length : window;
    MOXING_CHECK(T <= window,
                 "config: [data] max_length = {} is longer than the model's window ({} positions)",
                 T, window);
    L_ = T - 2;
    if (data_.train != nullptr) {
      MOXING_CHECK(data_.tokenizer->vocab_size() <= mlm_->vocab_size(),
                   "the tokenizer has {} tokens but the model's vocabulary only {}",
                   data_.tokenizer->vocab_size(), mlm_->vocab_size());
      const int64_t blocks = data_.train->size() / L_;
      MOXING_CHECK(blocks > 0, "the training text has {} tokens, fewer than one block of {}",
                   data_.train->size(), L_);
      batches_ = EpochBatches(blocks, config_.data.batch_size, config_.train.grad_accum);
    }
    std::vector<optim::ParamGroup> groups =
        optim::decay_groups(model.module->named_parameters(), config_.optim.weight_decay);
    run.add_model("model", std::move(model));
    run.add_optimizer("optimizer", "model", std::move(groups));
  }

  int64_t steps_per_epoch() const override { return batches_.steps_per_epoch(); }
  int64_t micro_batches(int64_t step) const override { return batches_.micro_batches(step); }

  StepOutput training_step(Run& run, int64_t step, int64_t micro) override {
    (void)run;
    const auto seed = static_cast<uint64_t>(config_.train.seed);
    const std::span<const int64_t> blocks = batches_.items(step, micro, seed);
    const auto count = static_cast<int64_t>(blocks.size());
    std::vector<int64_t> ids = read_blocks(*data_.train, blocks, L_, ids_);
    const uint64_t draw = static_cast<uint64_t>(step * config_.train.grad_accum + micro);
    std::vector<int64_t> labels =
        mask_tokens(ids, ids_.special, ids_.mask, ids_.vocab, opt_.mlm_probability,
                    Generator(data::mix_seed(data::mix_seed(seed, 0x6d6c6d), draw)));
    auto [positions, targets] = masked_positions(labels);
    return step_on(from_vector(ids, {count, L_ + 2}), positions, targets);
  }

  std::optional<StepOutput> meta_step(Run& run) override {
    (void)run;
    const int64_t B = config_.data.batch_size, T = L_ + 2;
    // the expected share of masked tokens
    const auto n =
        static_cast<int64_t>(std::ceil(static_cast<double>(B * T) * opt_.mlm_probability));
    return step_on(empty({B, T}, DType::i64), empty({n}, DType::i64), empty({n}, DType::i64));
  }

  std::optional<Metrics> validate(Run& run) override {
    if (data_.val == nullptr || data_.val->size() < L_) return std::nullopt;
    MLMEval r = evaluate_mlm(*mlm_, *data_.val, L_, config_.data.batch_size, ids_,
                             opt_.mlm_probability, static_cast<uint64_t>(config_.train.seed));
    run.note(fmt::format(
        "step {}: val masked-token loss {:.4f} (perplexity {:.1f}), accuracy {:.4f} over {} "
        "tokens",
        run.step(), r.loss, std::exp(r.loss), r.accuracy, r.targets));
    return Metrics{{"loss", r.loss}, {"accuracy", r.accuracy}, {"perplexity", std::exp(r.loss)}};
  }

  void save_extras(const std::string& dir) const override { data_.tokenizer->save(dir); }

  EvalReport evaluate(const LoadedRun& run, const std::string& data_path) override {
    (void)data_path;
    auto& mlm = run.model.expect<models::MaskedLM>("a masked language model");
    auto tokenizer = tokenizers::load_tokenizer(run.checkpoint_dir);
    MaskIds ids = mask_ids(*tokenizer, run.checkpoint_dir);
    RunValTokens val = open_run_val_tokens(run, tokenizer->vocab_size());
    int64_t window = 512;
    if (auto* enc = run.model.as<models::TextEncoder>()) window = enc->max_positions();
    const auto opt = run.config.data.options<MaskedTextOptions>();
    const int64_t T = opt.max_length > 0 ? opt.max_length : window;
    MLMEval r =
        evaluate_mlm(mlm, *val.tokens, T - 2, std::max<int64_t>(1, run.config.data.batch_size), ids,
                     opt.mlm_probability, static_cast<uint64_t>(run.config.train.seed));
    EvalReport out;
    out.json = {{"split", "val"},         {"masked_tokens", r.targets},
                {"loss", r.loss},         {"perplexity", std::exp(r.loss)},
                {"accuracy", r.accuracy}, {"checkpoint", run.checkpoint_dir}};
    out.text = fmt::format(
        "{} on the val split ({} masked tokens, {:.0f}% of the tokens)\nloss        {:.4f}\n"
        "perplexity  {:.2f}\naccuracy    {:.4f} (masked tokens)\n",
        run.checkpoint_dir, r.targets, opt.mlm_probability * 100, r.loss, std::exp(r.loss),
        r.accuracy);
    return out;
  }

 private:
  // the loss over the masked tokens: the head runs on those positions alone
  StepOutput step_on(const Tensor& ids, const Tensor& positions, const Tensor& targets) {
    Tensor logits = mlm_->mlm_logits_at({ids, Tensor(), Tensor()}, positions);  // (N,V)
    StepOutput out;
    out.loss = cross_entropy(logits, targets);
    out.items = ids.numel();
    return out;
  }

  const Config& config_;
  MaskedTextOptions opt_;
  LMData data_;
  MaskIds ids_;
  models::MaskedLM* mlm_ = nullptr;
  int64_t L_ = 126;
  EpochBatches batches_;
};

std::unique_ptr<Task> make_masked_lm_task(const Config& config) {
  return std::make_unique<MaskedLMTask>(config);
}

}  // namespace

MOXING_REGISTER_TASK("masked-lm", make_masked_lm_task);

}  // namespace moxing::train
