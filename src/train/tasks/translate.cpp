// The translate task: pair tables read and tokenized once, batches of indices in a permutation
// keyed by (seed, epoch) padded to their longest source and target (so a resumed run sees the
// batches of an uninterrupted one without loader state), label-smoothed teacher forcing, and
// BLEU / chrF / exact match of decodes.
#include "moxing/train/tasks/translate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/data/csv.h"
#include "moxing/data/dataset.h"
#include "moxing/io/checkpoint.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/reduction.h"
#include "moxing/optim/param_groups.h"
#include "moxing/tokenizers/bpe.h"
#include "moxing/train/epoch_batches.h"
#include "moxing/train/text_data.h"
#include "moxing/train/trainer.h"
#include "moxing/train/translation_metrics.h"

namespace moxing::train {

namespace fs = std::filesystem;

namespace {
// where a checkpoint keeps the target side's tokenizer when it has its own
constexpr const char* kTargetTokenizerDir = "target_tokenizer";
}  // namespace

std::vector<int32_t> encode_sentence(const tokenizers::Tokenizer& tokenizer,
                                     const std::string& text, int32_t eos, int64_t max_length,
                                     bool* truncated) {
  std::vector<int32_t> ids = tokenizer.encode(text);
  const bool cut = max_length > 0 && static_cast<int64_t>(ids.size()) + 1 > max_length;
  if (cut) ids.resize(static_cast<size_t>(max_length - 1));
  if (truncated != nullptr) *truncated = cut;
  ids.push_back(eos);
  return ids;
}

void TranslationPairs::encode(const tokenizers::Tokenizer& source,
                              const tokenizers::Tokenizer& target, int32_t eos, int64_t max_length,
                              bool cut) {
  src_ids.clear();
  tgt_ids.clear();
  truncated = 0;
  for (int64_t i = 0; i < size(); ++i) {
    bool a = false, b = false;
    src_ids.push_back(
        encode_sentence(source, sources[static_cast<size_t>(i)], eos, max_length, &a));
    tgt_ids.push_back(
        encode_sentence(target, targets[static_cast<size_t>(i)], eos, max_length, &b));
    MOXING_CHECK(cut || !(a || b),
                 "{}:{}: the {} has more than max_length = {} tokens (eos included); raise [data] "
                 "max_length or set [data] truncate = true",
                 path, lines[static_cast<size_t>(i)], a ? "source" : "target", max_length);
    truncated += a || b;
  }
}

Metrics translation_scores(const std::vector<std::string>& hypotheses,
                           const std::vector<std::string>& references) {
  MOXING_CHECK(hypotheses.size() == references.size() && !hypotheses.empty(),
               "translation scores: {} hypotheses for {} references", hypotheses.size(),
               references.size());
  auto trim = [](const std::string& s) {
    const char* ws = " \t\r\n";
    const size_t a = s.find_first_not_of(ws);
    return a == std::string::npos ? std::string() : s.substr(a, s.find_last_not_of(ws) - a + 1);
  };
  double exact = 0;
  for (size_t i = 0; i < hypotheses.size(); ++i)
    exact += trim(hypotheses[i]) == trim(references[i]);
  return {{"bleu", corpus_bleu(hypotheses, {references}).score},
          {"chrf", corpus_chrf(hypotheses, {references})},
          {"exact_match", exact / static_cast<double>(hypotheses.size())}};
}

namespace {

std::optional<std::string> find_table(const fs::path& dir,
                                      std::initializer_list<const char*> names) {
  for (const char* name : names) {
    for (const char* ext : {".csv", ".tsv"}) {
      fs::path p = dir / (std::string(name) + ext);
      if (fs::is_regular_file(p)) return p.string();
    }
  }
  return std::nullopt;
}

TranslationPairs read_pairs(const std::string& path, const TranslationDataOptions& d) {
  data::CsvTable t = data::read_csv(path);
  const size_t src = t.column(d.source_column, "[data] source_column");
  const size_t tgt = t.column(d.target_column, "[data] target_column");
  TranslationPairs p;
  p.path = path;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    MOXING_CHECK(!t.rows[i][src].empty() && !t.rows[i][tgt].empty(),
                 "{}:{}: the source or the target is empty", path, t.lines[i]);
    p.sources.push_back(t.rows[i][src]);
    p.targets.push_back(t.rows[i][tgt]);
    p.lines.push_back(t.lines[i]);
  }
  MOXING_CHECK(p.size() > 0, "{}: the table has a header but no pairs", path);
  return p;
}

struct TranslationData {
  TranslationPairs train, val, test;  // val and test may be empty
};

TranslationData load_pairs(const Config& config, bool need_train) {
  const DataConfig& dc = config.data;
  const auto d = dc.options<TranslationDataOptions>();
  MOXING_CHECK(fs::is_directory(dc.path),
               "[data] path {} is not a folder holding train.csv (and validation.csv, test.csv)",
               dc.path);
  TranslationData out;
  if (need_train) {
    auto train = find_table(dc.path, {"train"});
    MOXING_CHECK(train.has_value(), "{}: no train.csv or train.tsv in the folder", dc.path);
    out.train = read_pairs(*train, d);
  }
  if (auto val = find_table(dc.path, {"validation", "val", "dev"})) out.val = read_pairs(*val, d);
  if (auto test = find_table(dc.path, {"test"})) out.test = read_pairs(*test, d);
  return out;
}

int32_t end_token(const tokenizers::Tokenizer& tokenizer, const std::string& where) {
  auto eos = tokenizer.eos_token_id();
  MOXING_CHECK(eos.has_value(),
               "{}: the tokenizer has no end token (</s> or <|endoftext|>), which translation "
               "needs after each sentence",
               where);
  return *eos;
}

// "bpe": a byte-level BPE trained on texts, with </s> (0), <unk> and <pad>; else a folder
std::shared_ptr<tokenizers::Tokenizer> make_tokenizer(const std::string& spec, int64_t vocab_size,
                                                      const std::vector<std::string>& texts) {
  if (spec != "bpe") {
    return std::shared_ptr<tokenizers::Tokenizer>(tokenizers::load_tokenizer(spec));
  }
  tokenizers::BpeTrainOptions o;
  o.vocab_size = vocab_size;
  o.special_tokens = {"</s>", "<unk>", "<pad>"};
  return std::make_shared<tokenizers::ByteLevelBPE>(tokenizers::ByteLevelBPE::train(texts, o));
}

// A padded batch: src (B,S) and its mask, decoder inputs (B,T) = [start, target...]; the
// labels (N) = each target's tokens and eos, at the flat positions (N) of (B*T) they are
// predicted from (the loss runs the vocabulary projection on those rows only, not on padding).
struct PairBatch {
  Tensor src, mask, decoder_in, positions, labels;
  int64_t tokens = 0;
};

PairBatch make_batch(const TranslationPairs& p, std::span<const int64_t> idx, int32_t pad,
                     int32_t start) {
  const auto B = static_cast<int64_t>(idx.size());
  int64_t S = 0, T = 0;
  for (int64_t i : idx) {
    S = std::max<int64_t>(S, static_cast<int64_t>(p.src_ids[static_cast<size_t>(i)].size()));
    T = std::max<int64_t>(T, static_cast<int64_t>(p.tgt_ids[static_cast<size_t>(i)].size()));
  }
  std::vector<int64_t> src(static_cast<size_t>(B * S), pad), mask(src.size(), 0);
  std::vector<int64_t> dec(static_cast<size_t>(B * T), pad), pos, lab;
  PairBatch b;
  for (int64_t r = 0; r < B; ++r) {
    const auto& s = p.src_ids[static_cast<size_t>(idx[static_cast<size_t>(r)])];
    const auto& t = p.tgt_ids[static_cast<size_t>(idx[static_cast<size_t>(r)])];
    for (size_t j = 0; j < s.size(); ++j) {
      src[static_cast<size_t>(r * S) + j] = s[j];
      mask[static_cast<size_t>(r * S) + j] = 1;
    }
    for (size_t j = 0; j < t.size(); ++j) {
      dec[static_cast<size_t>(r * T) + j] = j == 0 ? start : t[j - 1];
      pos.push_back(r * T + static_cast<int64_t>(j));
      lab.push_back(t[j]);
    }
    b.tokens += static_cast<int64_t>(t.size());
  }
  b.src = from_vector(src, {B, S});
  b.mask = from_vector(mask, {B, S});
  b.decoder_in = from_vector(dec, {B, T});
  b.positions = from_vector(pos, {b.tokens});
  b.labels = from_vector(lab, {b.tokens});
  return b;
}

Tensor seq2seq_loss(models::Seq2SeqLM& model, const PairBatch& b, double label_smoothing,
                    Tensor* logits_out = nullptr) {
  Tensor memory = model.encode(b.src, b.mask);
  Tensor h = model.decoder_states(b.decoder_in, memory, b.mask);  // (B,T,C)
  h = index_select(h.reshape({-1, h.size(2)}), 0, b.positions);   // (N,C)
  Tensor logits = model.lm_head(h);                               // (N,V)
  if (logits_out != nullptr) *logits_out = logits;
  return cross_entropy(logits, b.labels, Reduction::mean, -100, label_smoothing);
}

// mean token cross-entropy (no smoothing) over a split, in eval mode
double pairs_loss(models::Seq2SeqLM& model, const TranslationPairs& p, int32_t pad, int32_t start,
                  int64_t batch) {
  nn::Module& module = model.module();
  const bool was_training = module.is_training();
  module.eval();
  NoGradGuard no_grad;
  std::vector<int64_t> order(static_cast<size_t>(p.size()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return p.src_ids[static_cast<size_t>(a)].size() < p.src_ids[static_cast<size_t>(b)].size();
  });
  double sum_loss = 0;
  int64_t tokens = 0;
  for (size_t first = 0; first < order.size(); first += static_cast<size_t>(batch)) {
    const size_t n = std::min(order.size() - first, static_cast<size_t>(batch));
    PairBatch b = make_batch(p, std::span<const int64_t>(order.data() + first, n), pad, start);
    sum_loss +=
        seq2seq_loss(model, b, 0.0).to(DType::f64).item<double>() * static_cast<double>(b.tokens);
    tokens += b.tokens;
  }
  module.train(was_training);
  return sum_loss / static_cast<double>(tokens);
}

std::vector<std::string> decode_texts(const tokenizers::Tokenizer& tokenizer,
                                      const std::vector<std::vector<int32_t>>& ids) {
  std::vector<std::string> out;
  for (const auto& t : ids) out.push_back(tokenizer.decode(t, /*skip_special_tokens=*/true));
  return out;
}

std::string describe(const Metrics& m) {
  std::string s;
  for (const char* k : {"loss", "perplexity", "bleu", "chrf", "exact_match"}) {
    auto it = m.find(k);
    if (it != m.end()) s += fmt::format("{}{} {:.4f}", s.empty() ? "" : ", ", k, it->second);
  }
  return s;
}

class TranslateTask : public Task {
 public:
  explicit TranslateTask(const Config& config) : config_(config) {}

  std::string items_name() const override { return "tokens"; }

  void check_data_config() const override {
    check_choice("[data] name", config_.data.name, {"csv"});
    MOXING_CHECK(!config_.data.path.empty(),
                 "config: [data] path is needed: a folder holding train.csv (and validation.csv, "
                 "test.csv) with a source and a target column");
    const auto d = config_.data.options<TranslationDataOptions>();
    MOXING_CHECK(d.max_length >= 0 && d.max_length != 1,
                 "config: [data] max_length must be 0 or at least 2, got {}", d.max_length);
    MOXING_CHECK(d.label_smoothing >= 0 && d.label_smoothing < 1,
                 "config: [data] label_smoothing must be in [0, 1), got {}", d.label_smoothing);
    MOXING_CHECK(d.num_beams >= 1, "config: [data] num_beams must be at least 1, got {}",
                 d.num_beams);
    MOXING_CHECK(d.val_decode_sentences >= 0 && d.max_new_tokens >= 0,
                 "config: [data] val_decode_sentences and max_new_tokens must be >= 0");
    MOXING_CHECK(d.tokenizer != "bpe" || d.vocab_size > 259,
                 "config: [data] tokenizer \"bpe\" needs vocab_size > 259 (3 special tokens, the "
                 "256 bytes and merges), got {}",
                 d.vocab_size);
    MOXING_CHECK(
        d.target_tokenizer != "bpe" || d.target_vocab_size == 0 || d.target_vocab_size > 259,
        "config: [data] target_tokenizer \"bpe\" needs target_vocab_size > 259 (or 0: "
        "vocab_size), got {}",
        d.target_vocab_size);
  }

  std::optional<nlohmann::json> data_fields() const override {
    return models::config_to_json(config_.data.options<TranslationDataOptions>());
  }

  nlohmann::json setup_data(Run& run) override {
    opt_ = config_.data.options<TranslationDataOptions>();
    data_ = load_pairs(config_, true);
    const bool separate = !opt_.target_tokenizer.empty();
    std::vector<std::string> texts = data_.train.sources;
    if (!separate)
      texts.insert(texts.end(), data_.train.targets.begin(), data_.train.targets.end());
    tokenizer_ = make_tokenizer(opt_.tokenizer, opt_.vocab_size, texts);
    eos_ = end_token(*tokenizer_, "[data] tokenizer");
    pad_ = pad_token_id(*tokenizer_);
    if (separate) {
      target_ = make_tokenizer(opt_.target_tokenizer, target_bpe_size(opt_), data_.train.targets);
      MOXING_CHECK(
          end_token(*target_, "[data] target_tokenizer") == eos_ && pad_token_id(*target_) == pad_,
          "[data] tokenizer and target_tokenizer disagree on the ids of the end and pad "
          "tokens ({} and {} against {} and {}); both sides must share them",
          eos_, pad_, end_token(*target_, "[data] target_tokenizer"), pad_token_id(*target_));
    } else {
      target_ = tokenizer_;
    }
    run.note(fmt::format(
        "data: {} training, {} validation, {} test pairs ({} -> {}); {}", data_.train.size(),
        data_.val.size(), data_.test.size(), opt_.source_column, opt_.target_column,
        separate ? fmt::format("a {} tokenizer of {} tokens for the sources and a {} one of {} "
                               "for the targets",
                               tokenizer_->type(), tokenizer_->vocab_size(), target_->type(),
                               target_->vocab_size())
                 : fmt::format("a {} tokenizer of {} tokens for both sides", tokenizer_->type(),
                               tokenizer_->vocab_size())));
    // Marian's convention: decoding starts from the pad token
    return {{"vocab_size", tokenizer_->vocab_size()},
            {"decoder_vocab_size", target_->vocab_size()},
            {"share_encoder_decoder_embeddings", shares_embeddings(separate)},
            {"pad_token_id", pad_},
            {"eos_token_id", eos_},
            {"decoder_start_token_id", pad_}};
  }

  void configure(Run& run, models::Model model) override {
    model_ = &model.expect<models::Seq2SeqLM>("an encoder-decoder model");
    opt_ = config_.data.options<TranslationDataOptions>();  // also for a memory estimate
    const int64_t window = model_->max_positions();
    max_length_ = opt_.max_length > 0 ? opt_.max_length : window;
    MOXING_CHECK(
        max_length_ <= window,
        "config: [data] max_length = {} is longer than the model's max_position_embeddings "
        "({})",
        max_length_, window);
    start_ = static_cast<int32_t>(model_->decoder_start_token_id());
    if (tokenizer_ != nullptr) {  // not for a memory estimate, which reads no data
      MOXING_CHECK(tokenizer_->vocab_size() <= model_->source_vocab_size() &&
                       target_->vocab_size() <= model_->target_vocab_size(),
                   "the tokenizers have {} (source) and {} (target) tokens but the model's "
                   "vocabularies {} and {}",
                   tokenizer_->vocab_size(), target_->vocab_size(), model_->source_vocab_size(),
                   model_->target_vocab_size());
      for (TranslationPairs* s : {&data_.train, &data_.val, &data_.test}) {
        s->encode(*tokenizer_, *target_, eos_, max_length_, opt_.truncate);
        if (s->truncated > 0) {
          run.note(fmt::format(
              "note: {} of the {} pairs of {} have a side longer than {} tokens (eos included) "
              "and were cut ([data] max_length)",
              s->truncated, s->size(), s->path, max_length_));
        }
      }
      batches_ =
          EpochBatches(data_.train.size(), config_.data.batch_size, config_.train.grad_accum);
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
    std::span<const int64_t> idx =
        batches_.items(step, micro, static_cast<uint64_t>(config_.train.seed));
    return step_on(make_batch(data_.train, idx, pad_, start_));
  }

  nlohmann::json data_fields_from_config() const override {
    const auto d = config_.data.options<TranslationDataOptions>();
    if (d.tokenizer != "bpe") return nlohmann::json::object();
    const bool separate = !d.target_tokenizer.empty();
    nlohmann::json facts = {{"vocab_size", d.vocab_size},
                            {"share_encoder_decoder_embeddings", shares_embeddings(separate)},
                            {"pad_token_id", 2},
                            {"eos_token_id", 0},
                            {"decoder_start_token_id", 2}};
    if (!separate || d.target_tokenizer == "bpe") facts["decoder_vocab_size"] = target_bpe_size(d);
    return facts;
  }

  std::optional<StepOutput> meta_step(Run& run) override {
    (void)run;
    const int64_t B = config_.data.batch_size, T = max_length_;
    PairBatch b{empty({B, T}, DType::i64),  empty({B, T}, DType::i64),  empty({B, T}, DType::i64),
                empty({B * T}, DType::i64), empty({B * T}, DType::i64), B * T};
    return step_on(b);
  }

  std::optional<Metrics> validate(Run& run) override {
    if (data_.val.size() == 0) return std::nullopt;
    Metrics m;
    m["loss"] = pairs_loss(*model_, data_.val, pad_, start_, config_.data.eval_batch_size);
    m["perplexity"] = std::exp(m["loss"]);
    const int64_t n = std::min(opt_.val_decode_sentences, data_.val.size());
    if (n > 0) {
      std::vector<std::vector<int32_t>> src(data_.val.src_ids.begin(),
                                            data_.val.src_ids.begin() + n);
      std::vector<std::string> refs(data_.val.targets.begin(), data_.val.targets.begin() + n);
      models::Seq2SeqDecoding o = decoding(1);
      for (const auto& [k, v] :
           translation_scores(decode_texts(*target_, decode_sequences(*model_, src, o)), refs)) {
        m[k] = v;
      }
    }
    run.note(fmt::format("step {}: val {}{}", run.step(), describe(m),
                         n > 0 ? fmt::format(" (greedy, first {} sentences)", n) : ""));
    return m;
  }

  std::optional<Metrics> test(Run& run) override {
    if (data_.test.size() == 0) return std::nullopt;
    nlohmann::json report;
    Metrics m = evaluate_split(*model_, *target_, data_.test, report);
    write_text_file_atomic(run.out_dir() + "/test_metrics.json", report.dump(2) + "\n");
    run.note(fmt::format("test: {} (beam {})", describe(m), opt_.num_beams));
    return m;
  }

  nlohmann::json state() const override { return {{"max_length", max_length_}}; }

  void save_extras(const std::string& dir) const override {
    tokenizer_->save(dir);
    if (target_ != tokenizer_) target_->save(dir + "/" + kTargetTokenizerDir);
  }

  EvalReport evaluate(const LoadedRun& run, const std::string& data_path) override {
    Config config = run.config;
    if (!data_path.empty()) config.data.path = data_path;
    opt_ = config.data.options<TranslationDataOptions>();
    model_ = &run.model.expect<models::Seq2SeqLM>("an encoder-decoder model");
    TranslationTokenizers tok = load_translation_tokenizers(run.checkpoint_dir);
    tokenizer_ = tok.source;
    target_ = tok.target;
    eos_ = end_token(*tokenizer_, run.checkpoint_dir);
    pad_ = pad_token_id(*tokenizer_);
    start_ = static_cast<int32_t>(model_->decoder_start_token_id());
    max_length_ = opt_.max_length > 0 ? opt_.max_length : model_->max_positions();
    TranslationData d = load_pairs(config, false);
    TranslationPairs& split = d.test.size() > 0 ? d.test : d.val;
    const std::string split_name = d.test.size() > 0 ? "test" : "val";
    MOXING_CHECK(split.size() > 0, "{} has neither a test nor a validation split",
                 config.data.path);
    split.encode(*tokenizer_, *target_, eos_, max_length_, opt_.truncate);
    nlohmann::json report;
    Metrics m = evaluate_split(*model_, *target_, split, report);
    EvalReport out;
    out.json = report;
    out.json["split"] = split_name;
    out.json["path"] = split.path;
    out.json["checkpoint"] = run.checkpoint_dir;
    out.text = fmt::format("{} on the {} split ({}, {} pairs), beam {}\n", run.checkpoint_dir,
                           split_name, split.path, split.size(), opt_.num_beams);
    for (const auto& [k, v] : m) out.text += fmt::format("{:<14}{:.4f}\n", k, v);
    out.text += "\nsamples:\n";
    for (const auto& s : report["samples"]) {
      out.text += fmt::format("  source     {}\n  reference  {}\n  moxing     {}\n\n",
                              s["source"].get<std::string>(), s["reference"].get<std::string>(),
                              s["translation"].get<std::string>());
    }
    return out;
  }

 private:
  static int64_t target_bpe_size(const TranslationDataOptions& d) {
    return d.target_tokenizer == "bpe" && d.target_vocab_size > 0 ? d.target_vocab_size
                                                                  : d.vocab_size;
  }

  // separate tokenizers need separate tables; one shared tokenizer keeps the [model]'s choice
  bool shares_embeddings(bool separate) const {
    if (separate) return false;
    const nlohmann::json m = config_.model.resolved();
    auto it = m.find("share_encoder_decoder_embeddings");
    return it == m.end() || !it->is_boolean() || it->get<bool>();
  }

  models::Seq2SeqDecoding decoding(int64_t beams) const {
    models::Seq2SeqDecoding o;
    o.num_beams = beams;
    o.length_penalty = opt_.length_penalty;
    o.max_new_tokens = opt_.max_new_tokens > 0 ? opt_.max_new_tokens : max_length_;
    o.batch_size = std::max<int64_t>(1, std::min<int64_t>(64, config_.data.eval_batch_size));
    return o;
  }

  // loss, perplexity, bleu, chrf, exact_match of beam decodes; report gets them and samples
  Metrics evaluate_split(models::Seq2SeqLM& model, const tokenizers::Tokenizer& tokenizer,
                         const TranslationPairs& split, nlohmann::json& report) {
    Metrics m;
    m["loss"] =
        pairs_loss(model, split, pad_, start_, std::max<int64_t>(1, config_.data.eval_batch_size));
    m["perplexity"] = std::exp(m["loss"]);
    std::vector<std::string> hyps =
        decode_texts(tokenizer, decode_sequences(model, split.src_ids, decoding(opt_.num_beams)));
    for (const auto& [k, v] : translation_scores(hyps, split.targets)) m[k] = v;
    report = nlohmann::json::object();
    for (const auto& [k, v] : m) report[k] = v;
    report["bleu_signature"] = corpus_bleu(hyps, {split.targets}).to_string();
    report["num_beams"] = opt_.num_beams;
    report["samples"] = nlohmann::json::array();
    for (int64_t i = 0; i < std::min<int64_t>(10, split.size()); ++i) {
      report["samples"].push_back({{"source", split.sources[static_cast<size_t>(i)]},
                                   {"reference", split.targets[static_cast<size_t>(i)]},
                                   {"translation", hyps[static_cast<size_t>(i)]}});
    }
    return m;
  }

  StepOutput step_on(const PairBatch& b) {
    Tensor logits;
    StepOutput out;
    out.loss = seq2seq_loss(*model_, b, opt_.label_smoothing, &logits);
    out.items = b.tokens;
    out.sums.emplace_back("accuracy", sum(eq(argmax(logits.detach(), 1), b.labels).to(DType::f64)));
    return out;
  }

  const Config& config_;
  TranslationDataOptions opt_;
  TranslationData data_;
  std::shared_ptr<tokenizers::Tokenizer> tokenizer_, target_;  // target_: tokenizer_ when shared
  int32_t eos_ = 0, pad_ = 0, start_ = 0;
  int64_t max_length_ = 128;
  EpochBatches batches_;
  models::Seq2SeqLM* model_ = nullptr;
};

std::unique_ptr<Task> make_translate_task(const Config& config) {
  return std::make_unique<TranslateTask>(config);
}

}  // namespace

MOXING_REGISTER_TASK("translate", make_translate_task);

TranslationTokenizers load_translation_tokenizers(const std::string& dir) {
  TranslationTokenizers t;
  t.source = std::shared_ptr<tokenizers::Tokenizer>(tokenizers::load_tokenizer(dir));
  const fs::path target = fs::path(dir) / kTargetTokenizerDir;
  t.target =
      fs::is_directory(target)
          ? std::shared_ptr<tokenizers::Tokenizer>(tokenizers::load_tokenizer(target.string()))
          : t.source;
  return t;
}

LoadedTranslator load_translator(const std::string& path) {
  LoadedTranslator t;
  t.run = load_run(path);
  t.model = &t.run.model.expect<models::Seq2SeqLM>("an encoder-decoder model");
  TranslationTokenizers tok = load_translation_tokenizers(t.run.checkpoint_dir);
  t.tokenizer = tok.source;
  t.target_tokenizer = tok.target;
  t.eos = end_token(*t.tokenizer, t.run.checkpoint_dir);
  MOXING_CHECK(t.tokenizer->vocab_size() <= t.model->source_vocab_size() &&
                   t.target_tokenizer->vocab_size() <= t.model->target_vocab_size(),
               "{}: the tokenizers have {} (source) and {} (target) tokens but the model's "
               "vocabularies {} and {}",
               t.run.checkpoint_dir, t.tokenizer->vocab_size(), t.target_tokenizer->vocab_size(),
               t.model->source_vocab_size(), t.model->target_vocab_size());
  return t;
}

std::vector<std::string> translate_texts(const LoadedTranslator& t,
                                         const std::vector<std::string>& texts,
                                         const models::Seq2SeqDecoding& options) {
  std::vector<std::vector<int32_t>> src;
  int64_t cut = 0;
  for (const std::string& text : texts) {
    bool truncated = false;
    src.push_back(encode_sentence(*t.tokenizer, text, t.eos, t.model->max_positions(), &truncated));
    cut += truncated;
  }
  if (cut > 0) {
    fmt::print(stderr,
               "note: {} of the {} texts are longer than the model's {} positions and were cut\n",
               cut, texts.size(), t.model->max_positions());
  }
  return decode_texts(*t.target_tokenizer, decode_sequences(*t.model, src, options));
}

}  // namespace moxing::train
