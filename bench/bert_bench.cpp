// `moxing bench-bert`: BERT inference timed as bench/peer/bert_torch.py times transformers and
// sentence-transformers. --task forward: a BertModel with random weights (BERT-base by default:
// 12 layers, width 768, 12 heads, 3072) on batch x seq random tokens, no padding, the median
// of --repeats forwards after one warm-up. --task embed: models::SentenceEncoder over a
// sentence-transformers folder (--model) embedding a CSV column (--file, --column) in batches
// of --batch, sentences per second from the median of --repeats passes after one warm-up.
// bench/bert_vs_peers.sh runs both sides alternately and prints the ratios.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "command.h"
#include "moxing/data/csv.h"
#include "moxing/models/bert.h"
#include "moxing/models/sentence.h"
#include "moxing/moxing.h"
#include "timing.h"

namespace moxing::tools {
namespace {

struct BertBenchOptions {
  std::string task = "forward";
  int threads = 0;
  int64_t layers = 12, heads = 12, width = 768, intermediate = 3072, vocab = 30522;
  int64_t batch = 0, seq = 128, repeats = 5;  // batch 0: 8 for forward, 32 for embed
  std::string model, file, column = "text";
  int64_t limit = 0;  // embed: the first limit rows (0: all)
  bool json = false;
};

int run_bert_bench(BertBenchOptions o) {
  MOXING_CHECK(o.task == "forward" || o.task == "embed",
               "bench-bert: --task must be forward or embed, got {}", o.task);
  MOXING_CHECK(o.repeats > 0, "bench-bert: --repeats must be positive, got {}", o.repeats);
  if (o.batch <= 0) o.batch = o.task == "forward" ? 8 : 32;
  if (o.threads > 0) set_num_threads(o.threads);
  nlohmann::ordered_json out = {{"peer", "moxing"}, {"task", o.task}, {"threads", num_threads()}};
  NoGradGuard no_grad;
  if (o.task == "forward") {
    models::BertConfig c;
    c.num_hidden_layers = o.layers;
    c.num_attention_heads = o.heads;
    c.hidden_size = o.width;
    c.intermediate_size = o.intermediate;
    c.vocab_size = o.vocab;
    Generator gen(0);
    models::BertModel model(c, &gen);
    model.eval();
    Tensor ids = randint(0, o.vocab, {o.batch, o.seq}, DType::i64, &gen);
    double checksum = 0;
    std::vector<double> times = time_repeats(o.repeats, [&] {
      Tensor h = model.encode({ids, Tensor(), Tensor()});
      checksum = sum(abs(h.to(DType::f64))).item<double>();
    });
    out["layers"] = o.layers;
    out["width"] = o.width;
    out["heads"] = o.heads;
    out["intermediate"] = o.intermediate;
    out["batch"] = o.batch;
    out["seq"] = o.seq;
    out["seconds"] = median(times);
    out["seconds_all"] = times;
    out["abs_sum"] = checksum;
  } else {
    MOXING_CHECK(!o.model.empty() && !o.file.empty(),
                 "bench-bert --task embed needs --model DIR and --file CSV");
    data::CsvTable table = data::read_csv(o.file);
    const size_t col = table.column(o.column);
    std::vector<std::string> texts;
    for (const auto& row : table.rows) {
      if (o.limit > 0 && static_cast<int64_t>(texts.size()) >= o.limit) break;
      if (!row[col].empty()) texts.push_back(row[col]);
    }
    MOXING_CHECK(!texts.empty(), "bench-bert: {} has no text in column {}", o.file, o.column);
    models::SentenceEncoderOptions so;
    so.batch_size = o.batch;
    models::SentenceEncoder enc = models::SentenceEncoder::load(o.model, so);
    double checksum = 0;
    std::vector<double> times = time_repeats(o.repeats, [&] {
      Tensor v = enc.embed(texts);
      checksum = sum(abs(v.to(DType::f64))).item<double>();
    });
    const double secs = median(times);
    out["sentences"] = texts.size();
    out["batch"] = o.batch;
    out["seconds"] = secs;
    out["seconds_all"] = times;
    out["sentences_per_s"] = static_cast<double>(texts.size()) / secs;
    out["abs_sum"] = checksum;
  }
  std::cout << (o.json ? out.dump() : out.dump(2)) << "\n";
  return 0;
}

Command add_bert_bench_command(CLI::App& app) {
  auto o = std::make_shared<BertBenchOptions>();
  auto* cmd = app.add_subcommand(
      "bench-bert",
      "Time BERT inference: a forward or sentence embeddings (peer: bench/peer/bert_torch.py)");
  cmd->add_option("--task", o->task,
                  "forward (random BertModel, batch x seq tokens) or embed (a "
                  "sentence-transformers folder over a CSV column)");
  cmd->add_option("--threads", o->threads, "Threads (default: MOXING_NUM_THREADS or all cores)");
  cmd->add_option("--layers", o->layers, "num_hidden_layers (default 12)");
  cmd->add_option("--heads", o->heads, "num_attention_heads (default 12)");
  cmd->add_option("--width", o->width, "hidden_size (default 768)");
  cmd->add_option("--intermediate", o->intermediate, "intermediate_size (default 3072)");
  cmd->add_option("--vocab", o->vocab, "vocab_size (default 30522)");
  cmd->add_option("--batch", o->batch, "Sequences per forward (default 8; embed: 32)");
  cmd->add_option("--seq", o->seq, "Tokens per sequence for forward (default 128)");
  cmd->add_option("--repeats", o->repeats, "Timed repeats after one warm-up (default 5)");
  cmd->add_option("--model", o->model, "embed: a sentence-transformers folder");
  cmd->add_option("--file", o->file, "embed: a CSV/TSV file with a header row");
  cmd->add_option("--column", o->column, "embed: the column of texts (default text)");
  cmd->add_option("--limit", o->limit, "embed: the first N rows only (default all)");
  cmd->add_flag("--json", o->json, "One JSON line");
  return {cmd, [o] { return run_bert_bench(*o); }};
}

MOXING_CLI_COMMAND(add_bert_bench_command);

}  // namespace
}  // namespace moxing::tools
