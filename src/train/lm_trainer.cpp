// The language-model training loop: window batches, validation loss, HF-folder checkpoints,
// resume.
#include "moxing/train/lm_trainer.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <iostream>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/core/parallel.h"
#include "moxing/io/checkpoint.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"
#include "moxing/optim/clip.h"
#include "moxing/optim/serialize.h"
#include "moxing/train/checkpoint.h"
#include "moxing/train/lm_data.h"
#include "moxing/train/logging.h"
#include "moxing/train/plot.h"
#include "moxing/train/progress.h"
#include "trainer_internal.h"

namespace moxing::train {

namespace fs = std::filesystem;
using detail::Clock;
using detail::seconds_since;

models::GPTConfig gpt_config(const ModelConfig& m, int64_t vocab_size, int32_t eos_id) {
  models::GPTConfig c;
  c.vocab_size = vocab_size;
  c.n_positions = m.n_positions;
  c.n_embd = m.n_embd;
  c.n_layer = m.n_layer;
  c.n_head = m.n_head;
  c.embd_pdrop = c.attn_pdrop = c.resid_pdrop = m.dropout;
  c.bos_token_id = c.eos_token_id = eos_id;
  return c;
}

LMEvalResult evaluate_lm(models::GPT& model, const TokenFile& tokens, int64_t batch) {
  const int64_t T = model.config().n_positions;
  const int64_t windows = (tokens.size() - 1) / T;
  MOXING_CHECK(windows > 0,
               "evaluate: {} has {} tokens, fewer than one window of n_positions + 1 = {}",
               tokens.path(), tokens.size(), T + 1);
  bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t first = 0; first < windows; first += batch) {
    int64_t count = std::min(batch, windows - first);
    Tensor x, y;
    sequential_windows(tokens, T, first, count, x, y);
    Tensor logits = model.forward(x);  // (B,T,V)
    Tensor flat = logits.reshape({count * T, logits.size(2)});
    Tensor target = y.reshape({count * T});
    loss_sum += cross_entropy(flat, target, Reduction::sum).to(DType::f64).item<double>();
    Tensor pred = argmax(flat, 1);
    const int64_t* p = pred.contiguous().data<int64_t>();
    const int64_t* t = target.contiguous().data<int64_t>();
    for (int64_t i = 0; i < count * T; ++i) correct += p[i] == t[i];
  }
  model.train(was_training);
  LMEvalResult r;
  r.tokens = windows * T;
  r.loss = loss_sum / static_cast<double>(r.tokens);
  r.accuracy = static_cast<double>(correct) / static_cast<double>(r.tokens);
  return r;
}

namespace {

// A checkpoint that is also a Hugging Face model folder.
void save_lm_checkpoint(const std::string& dir, const models::GPT& model,
                        const tokenizers::Tokenizer& tokenizer, const optim::Optimizer* opt,
                        const nlohmann::json& state) {
  fs::path parent = fs::path(dir).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  write_checkpoint_dir(dir, [&](const std::string& tmp) {
    model.save_pretrained(tmp);
    tokenizer.save(tmp);
    if (opt != nullptr) optim::save_optimizer(*opt, tmp + "/optimizer.safetensors");
    write_text_file_atomic(tmp + "/trainer_state.json", state.dump(2) + "\n");
  });
}

// AdamW as GPT-2 trainers use it: matrices decay, biases, norms (1-D) do not.
std::vector<optim::ParamGroup> decay_groups(const nn::Module& model, double weight_decay) {
  optim::ParamGroup decay, no_decay;
  decay.options["weight_decay"] = weight_decay;
  no_decay.options["weight_decay"] = 0.0;
  for (const auto& [name, p] : model.named_parameters()) {
    (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  }
  std::vector<optim::ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

std::string resolve_model_dir(const std::string& path) {
  if (fs::exists(fs::path(path) / "config.json")) return path;
  for (const char* sub : {"final", "best"}) {
    if (fs::exists(fs::path(path) / sub / "config.json")) return (fs::path(path) / sub).string();
  }
  auto latest = latest_checkpoint(path);
  MOXING_CHECK(latest.has_value() && fs::exists(fs::path(*latest) / "config.json"),
               "{} is neither a model folder (config.json, model.safetensors, tokenizer files) "
               "nor a `moxing train` run folder with final/, best/ or checkpoints/",
               path);
  return *latest;
}

}  // namespace

LoadedLM load_language_model(const std::string& path) {
  MOXING_CHECK(fs::exists(path), "{} does not exist", path);
  LoadedLM m;
  m.dir = resolve_model_dir(path);
  m.model = models::GPT::from_pretrained(m.dir);
  m.model->eval();
  m.tokenizer = std::shared_ptr<tokenizers::Tokenizer>(tokenizers::load_tokenizer(m.dir));
  MOXING_CHECK(m.tokenizer->vocab_size() <= m.model->config().vocab_size,
               "{}: the tokenizer has {} tokens but the model only {}", m.dir,
               m.tokenizer->vocab_size(), m.model->config().vocab_size);
  return m;
}

TrainSummary fit_lm(const Config& config, const TrainOptions& options) {
  config.validate();
  MOXING_CHECK(config.model.name == "gpt", "fit_lm: [model] name must be \"gpt\", got \"{}\"",
               config.model.name);
  const TrainLoopConfig& tc = config.train;
  MOXING_CHECK(!options.out_dir.empty(), "train: no output folder given");
  clear_stop_request();
  Clock::time_point start = Clock::now();
  if (tc.threads > 0) set_num_threads(static_cast<int>(tc.threads));
  const std::string out = options.out_dir;
  fs::create_directories(out);
  write_text_file_atomic(out + "/config.toml", config.to_toml());
  auto note = [&](const std::string& text) {
    if (options.progress) std::cerr << text << "\n";
  };

  LMData data = prepare_lm_data(config, out, options.progress);
  const int64_t T = config.model.n_positions;
  const int64_t B = config.data.batch_size;
  if (data.val != nullptr) {
    note(
        fmt::format("baseline: the validation split's unigram entropy is {:.4f} nats "
                    "(perplexity {:.1f}); the model's val loss is compared with it",
                    data.val_unigram_loss, std::exp(data.val_unigram_loss)));
  }

  auto seed = static_cast<uint64_t>(tc.seed);
  Generator init_gen(seed);
  auto model = std::make_shared<models::GPT>(
      gpt_config(config.model, data.tokenizer->vocab_size(), data.eos_id), &init_gen);
  manual_seed(seed);
  note(fmt::format("model: GPT with {} layers, {} heads, width {}, context {}: {:.2f}M parameters",
                   config.model.n_layer, config.model.n_head, config.model.n_embd, T,
                   static_cast<double>(model->num_parameters()) / 1e6));
  auto opt =
      optim::make_optimizer(config.optim.name, decay_groups(*model, config.optim.weight_decay),
                            detail::optimizer_hyper(config.optim));

  const int64_t tokens_per_step = B * T * tc.grad_accum;
  const int64_t steps_per_epoch =
      std::max<int64_t>(1, (data.train->size() + tokens_per_step - 1) / tokens_per_step);
  const int64_t total_steps = tc.steps > 0 ? tc.steps : tc.epochs * steps_per_epoch;
  auto sched = detail::make_scheduler(config.schedule, *opt, total_steps);
  const int64_t eval_every = tc.eval_every > 0 ? tc.eval_every : steps_per_epoch;
  const int64_t checkpoint_every = tc.checkpoint_every > 0 ? tc.checkpoint_every : steps_per_epoch;

  const bool higher_is_better = tc.best_metric == "val/accuracy";
  detail::RunPosition pos;
  if (options.resume) {
    detail::resume_latest(out, *model, *opt, *sched, config.to_json(), pos, note);
    note(fmt::format("resuming from {} (step {})", pos.last_good_checkpoint, pos.step));
  }
  int64_t& step = pos.step;
  std::optional<double>& best = pos.best;
  int64_t& best_step = pos.best_step;
  const double prior_seconds = pos.prior_seconds;
  int64_t& last_saved_step = pos.last_saved_step;
  std::string& last_good_checkpoint = pos.last_good_checkpoint;

  if (options.resume) drop_metrics_after(out, step);
  MetricsLogger logger(out, options.tensorboard);
  TrainSummary summary;
  summary.best_metric = tc.best_metric;
  summary.out_dir = out;
  if (data.val != nullptr) summary.baseline_loss = data.val_unigram_loss;

  auto elapsed = [&] { return prior_seconds + seconds_since(start); };
  auto epochs_done = [&] {
    return static_cast<double>(step) / static_cast<double>(steps_per_epoch);
  };
  auto state_json = [&] {
    return nlohmann::json{
        {"step", step},
        {"epoch", epochs_done()},
        {"total_steps", total_steps},
        {"generators", {{"default", generator_state(default_generator())}}},
        {"scheduler", sched->state_dict()},
        {"config", config.to_json()},
        {"baseline_loss", detail::opt_number(summary.baseline_loss)},
        {"best",
         {{"metric", tc.best_metric}, {"value", detail::opt_number(best)}, {"step", best_step}}},
        {"seconds", elapsed()}};
  };
  auto save_step_checkpoint = [&] {
    if (last_saved_step == step) return;
    std::string dir = fmt::format("{}/checkpoints/step-{}", out, step);
    save_lm_checkpoint(dir, *model, *data.tokenizer, opt.get(), state_json());
    last_saved_step = step;
    last_good_checkpoint = dir;
  };
  int64_t last_eval_step = -1;
  auto validate_now = [&] {
    if (data.val == nullptr || last_eval_step == step) return;
    last_eval_step = step;
    LMEvalResult r = evaluate_lm(*model, *data.val, B);
    summary.val_loss = r.loss;
    summary.val_accuracy = r.accuracy;
    summary.val_perplexity = std::exp(r.loss);
    logger.log({{"step", step},
                {"epoch", epochs_done()},
                {"split", "val"},
                {"loss", r.loss},
                {"accuracy", r.accuracy},
                {"perplexity", std::exp(r.loss)},
                {"baseline_loss", data.val_unigram_loss},
                {"lr", sched->get_last_lr().at(0)},
                {"seconds", elapsed()}});
    note(
        fmt::format("step {}: val loss {:.4f} (perplexity {:.1f}, {:.3f} x the unigram baseline), "
                    "accuracy {:.4f}",
                    step, r.loss, std::exp(r.loss), r.loss / data.val_unigram_loss, r.accuracy));
    double value = higher_is_better ? r.accuracy : r.loss;
    if (!best || (higher_is_better ? value > *best : value < *best)) {
      best = value;
      best_step = step;
      save_lm_checkpoint(out + "/best", *model, *data.tokenizer, nullptr, state_json());
    }
  };

  double win_loss = 0;
  int64_t win_steps = 0, win_tokens = 0;
  Clock::time_point win_start = Clock::now();
  std::optional<Progress> progress;
  if (options.progress) progress.emplace(total_steps, "train", tc.log_every);
  bool stopping = false;
  model->train();
  while (step < total_steps && !stopping) {
    bool nonfinite = false;
    double step_loss = 0;
    for (int64_t micro = 0; micro < tc.grad_accum; ++micro) {
      Tensor x, y;
      sample_windows(*data.train, B, T, seed, static_cast<uint64_t>(step * tc.grad_accum + micro),
                     x, y);
      Tensor logits = model->forward(x);  // (B,T,V)
      Tensor loss = cross_entropy(logits.reshape({B * T, logits.size(2)}), y.reshape({B * T}));
      double value = loss.to(DType::f64).item<double>();
      if (!std::isfinite(value)) {
        nonfinite = true;
        continue;
      }
      (tc.grad_accum > 1 ? loss * (1.0 / static_cast<double>(tc.grad_accum)) : loss).backward();
      step_loss += value / static_cast<double>(tc.grad_accum);
    }
    if (!nonfinite && tc.clip_grad_norm > 0) {
      double norm = optim::clip_grad_norm_(model->parameters(), tc.clip_grad_norm);
      if (!std::isfinite(norm)) nonfinite = true;
    }
    ++step;
    if (nonfinite) {
      std::string what = fmt::format("non-finite loss or gradient at step {}", step);
      MOXING_CHECK(tc.skip_nonfinite,
                   "{}; training stopped, no checkpoint written after it (last good checkpoint: "
                   "{}); set [train] skip_nonfinite = true to skip such steps",
                   what, last_good_checkpoint.empty() ? "none" : last_good_checkpoint);
      note(what + ": step skipped");
    } else {
      opt->step();
      win_loss += step_loss;
      win_steps += 1;
    }
    opt->zero_grad();
    sched->step();
    const double lr = sched->get_last_lr().at(0);
    win_tokens += tokens_per_step;
    if (progress) {
      progress->update(step, win_steps > 0 ? win_loss / static_cast<double>(win_steps) : NAN, lr,
                       tokens_per_step);
    }
    const bool last = step >= total_steps;
    stopping = stop_requested() || (options.stop_after_step > 0 && step >= options.stop_after_step);
    if (step % tc.log_every == 0 || last || stopping) {
      if (win_steps > 0) {
        double secs = seconds_since(win_start);
        logger.log({{"step", step},
                    {"epoch", epochs_done()},
                    {"split", "train"},
                    {"loss", win_loss / static_cast<double>(win_steps)},
                    {"lr", lr},
                    {"tokens_per_s", static_cast<double>(win_tokens) / std::max(secs, 1e-9)},
                    {"seconds", elapsed()}});
      }
      win_loss = 0;
      win_steps = win_tokens = 0;
      win_start = Clock::now();
    }
    if (step % eval_every == 0 || last) validate_now();
    if (step % checkpoint_every == 0 || last || stopping) save_step_checkpoint();
  }
  if (progress) progress->finish();

  summary.steps = step;
  summary.epochs = epochs_done();
  summary.interrupted = step < total_steps;
  if (summary.interrupted) {
    save_step_checkpoint();
    note(fmt::format("stopped at step {}; checkpoint {}; continue with --resume {}", step,
                     last_good_checkpoint, out));
  } else {
    validate_now();
    save_step_checkpoint();
    save_lm_checkpoint(out + "/final", *model, *data.tokenizer, opt.get(), state_json());
  }
  try {
    plot_curves_from_jsonl(logger.path(), out + "/curves.png");
  } catch (const Error& e) {
    note(fmt::format("note: curves.png not written: {}", e.what()));
  }
  summary.best_value = best;
  summary.best_step = best_step;
  summary.seconds = elapsed();
  return summary;
}

}  // namespace moxing::train
