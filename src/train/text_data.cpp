// Text to model inputs and labelled tables: what the encoder tasks and commands share.
#include "moxing/train/text_data.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>

#include "moxing/core/error.h"
#include "moxing/data/csv.h"
#include "moxing/data/dataset.h"

namespace moxing::train {

namespace fs = std::filesystem;

tokenizers::Encoding encode_text(const tokenizers::Tokenizer& tokenizer, std::string_view text,
                                 std::optional<std::string_view> pair, int64_t max_length,
                                 bool* truncated) {
  if (truncated != nullptr) *truncated = false;
  if (const auto* wp = dynamic_cast<const tokenizers::WordPieceTokenizer*>(&tokenizer)) {
    tokenizers::Encoding e = wp->encode_for_model(text, pair);
    if (max_length <= 0 || static_cast<int64_t>(e.ids.size()) <= max_length) return e;
    if (truncated != nullptr) *truncated = true;
    tokenizers::EncodeOptions o;
    o.max_length = max_length;
    return wp->encode_for_model(text, pair, o);
  }
  // a tokenizer without special tokens: the ids of text, then of pair (type 1)
  tokenizers::Encoding e;
  std::vector<int32_t> a = tokenizer.encode(text), b;
  if (pair) b = tokenizer.encode(*pair);
  if (max_length > 0) {
    const auto limit = static_cast<size_t>(max_length);
    if (a.size() + b.size() > limit && truncated != nullptr) *truncated = true;
    while (a.size() + b.size() > limit) (a.size() >= b.size() ? a : b).pop_back();
  }
  e.ids = a;
  e.ids.insert(e.ids.end(), b.begin(), b.end());
  e.token_type_ids.assign(a.size(), 0);
  e.token_type_ids.insert(e.token_type_ids.end(), b.size(), 1);
  e.attention_mask.assign(e.ids.size(), 1);
  return e;
}

int32_t pad_token_id(const tokenizers::Tokenizer& tokenizer) {
  for (const char* name : {"[PAD]", "<pad>"}) {
    if (auto id = tokenizer.token_to_id(name)) return *id;
  }
  return 0;
}

models::EncoderInputs pad_batch(const std::vector<tokenizers::Encoding>& all,
                                std::span<const int64_t> indices, int32_t pad_id) {
  MOXING_CHECK(!indices.empty(), "pad_batch: no texts");
  size_t T = 1;
  for (int64_t i : indices) T = std::max(T, all[static_cast<size_t>(i)].ids.size());
  const auto B = static_cast<int64_t>(indices.size());
  std::vector<int64_t> ids(static_cast<size_t>(B) * T, pad_id), types(ids.size(), 0),
      mask(ids.size(), 0);
  for (size_t r = 0; r < indices.size(); ++r) {
    const tokenizers::Encoding& e = all[static_cast<size_t>(indices[r])];
    for (size_t t = 0; t < e.ids.size(); ++t) {
      ids[r * T + t] = e.ids[t];
      types[r * T + t] = t < e.token_type_ids.size() ? e.token_type_ids[t] : 0;
      mask[r * T + t] = t < e.attention_mask.size() ? e.attention_mask[t] : 1;
    }
  }
  const auto Ti = static_cast<int64_t>(T);
  return {from_vector(ids, {B, Ti}), from_vector(types, {B, Ti}), from_vector(mask, {B, Ti}),
          /*skip_padding=*/true};
}

models::EncoderInputs pad_batch(std::span<const tokenizers::Encoding> batch, int32_t pad_id) {
  std::vector<tokenizers::Encoding> all(batch.begin(), batch.end());
  std::vector<int64_t> idx(all.size());
  std::iota(idx.begin(), idx.end(), int64_t{0});
  return pad_batch(all, idx, pad_id);
}

std::vector<std::vector<int64_t>> length_batches(const std::vector<tokenizers::Encoding>& all,
                                                 int64_t max_batch, int64_t max_tokens) {
  std::vector<int64_t> order(all.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return all[static_cast<size_t>(a)].ids.size() < all[static_cast<size_t>(b)].ids.size();
  });
  std::vector<std::vector<int64_t>> out;
  std::vector<int64_t> cur;
  for (int64_t i : order) {
    const auto len = static_cast<int64_t>(all[static_cast<size_t>(i)].ids.size());
    const auto n = static_cast<int64_t>(cur.size());
    if (!cur.empty() && (n >= max_batch || (n + 1) * len > max_tokens)) {
      out.push_back(std::move(cur));
      cur.clear();
    }
    cur.push_back(i);
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::vector<int64_t> mask_tokens(std::vector<int64_t>& ids, const std::vector<char>& special,
                                 int64_t mask_id, int64_t vocab_size, double p,
                                 const Generator& gen) {
  std::vector<int64_t> labels(ids.size(), -100);
  auto is_special = [&](int64_t id) {
    return id >= 0 && id < static_cast<int64_t>(special.size()) && special[static_cast<size_t>(id)];
  };
  int64_t chosen = 0, first_candidate = -1;
  const auto threshold = static_cast<uint64_t>(p * 4294967296.0);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (is_special(ids[i])) continue;
    if (first_candidate < 0) first_candidate = static_cast<int64_t>(i);
    std::array<uint32_t, 4> r = gen.block(i);
    if (r[0] >= threshold) continue;
    ++chosen;
    labels[i] = ids[i];
    const double u = u32_to_unit_float(r[1]);
    if (u < 0.8) {
      ids[i] = mask_id;
    } else if (u < 0.9) {
      ids[i] = static_cast<int64_t>(r[2] % static_cast<uint64_t>(vocab_size));
    }
  }
  if (chosen == 0 && first_candidate >= 0) {  // a batch without a target has no loss
    labels[static_cast<size_t>(first_candidate)] = ids[static_cast<size_t>(first_candidate)];
    ids[static_cast<size_t>(first_candidate)] = mask_id;
  }
  return labels;
}

void LabelledTexts::encode(const tokenizers::Tokenizer& tokenizer, int64_t max_length, bool cut) {
  encodings.clear();
  encodings.reserve(texts.size());
  truncated = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    bool was_cut = false;
    std::optional<std::string_view> pair;
    if (!pairs.empty()) pair = pairs[i];
    encodings.push_back(encode_text(tokenizer, texts[i], pair, max_length, &was_cut));
    MOXING_CHECK(!was_cut || cut,
                 "{}:{}: the text is longer than [data] max_length = {} tokens; raise max_length "
                 "(at most the model's window) or set [data] truncate = true to cut such texts",
                 path, lines[i], max_length);
    truncated += was_cut;
  }
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

std::string trim(std::string_view s) {
  const char* ws = " \t\r\n";
  size_t a = s.find_first_not_of(ws);
  if (a == std::string_view::npos) return "";
  size_t b = s.find_last_not_of(ws);
  return std::string(s.substr(a, b - a + 1));
}

// the raw label cells of a table, with the texts
struct RawTable {
  LabelledTexts texts;
  std::vector<std::string> cells;
};

RawTable read_table(const std::string& path, const CsvDataOptions& d) {
  data::CsvTable t = data::read_csv(path);
  const size_t text_col = t.column(d.text_column, "[data] text_column");
  const size_t label_col = t.column(d.label_column, "[data] label_column");
  std::optional<size_t> pair_col;
  if (!d.text_pair_column.empty())
    pair_col = t.column(d.text_pair_column, "[data] text_pair_column");
  RawTable r;
  r.texts.path = path;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const auto& row = t.rows[i];
    MOXING_CHECK(!trim(row[text_col]).empty(), "{}:{}: the text ({}) is empty", path, t.lines[i],
                 d.text_column);
    r.texts.texts.push_back(row[text_col]);
    if (pair_col) {
      MOXING_CHECK(!trim(row[*pair_col]).empty(), "{}:{}: the text pair ({}) is empty", path,
                   t.lines[i], d.text_pair_column);
      r.texts.pairs.push_back(row[*pair_col]);
    }
    r.texts.lines.push_back(t.lines[i]);
    r.cells.push_back(trim(row[label_col]));
  }
  MOXING_CHECK(!r.cells.empty(), "{}: the table has a header but no examples", path);
  return r;
}

std::vector<std::string> split_labels(const std::string& cell) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= cell.size()) {
    size_t comma = cell.find(',', start);
    if (comma == std::string::npos) comma = cell.size();
    std::string l = trim(std::string_view(cell).substr(start, comma - start));
    if (!l.empty()) out.push_back(l);
    start = comma + 1;
  }
  return out;
}

// fills labels / targets of r from its cells against the label set
void assign_labels(RawTable& r, const std::vector<std::string>& labels,
                   const std::string& problem_type) {
  std::map<std::string, int64_t> id;
  for (size_t i = 0; i < labels.size(); ++i) id[labels[i]] = static_cast<int64_t>(i);
  auto lookup = [&](const std::string& label, size_t row) {
    auto it = id.find(label);
    MOXING_CHECK(it != id.end(),
                 "{}:{}: the label '{}' is not in the label set ({}); fix the row, or list every "
                 "label in [data] labels",
                 r.texts.path, r.texts.lines[row], label, fmt::join(labels, ", "));
    return it->second;
  };
  for (size_t i = 0; i < r.cells.size(); ++i) {
    const std::string& cell = r.cells[i];
    if (problem_type == kRegression) {
      char* end = nullptr;
      double v = std::strtod(cell.c_str(), &end);
      MOXING_CHECK(!cell.empty() && end == cell.c_str() + cell.size() && std::isfinite(v),
                   "{}:{}: the value '{}' is not a number (problem_type regression)", r.texts.path,
                   r.texts.lines[i], cell);
      r.texts.targets.push_back({static_cast<float>(v)});
    } else if (problem_type == kMultiLabel) {
      std::vector<float> t(labels.size(), 0.0f);
      for (const std::string& l : split_labels(cell)) t[static_cast<size_t>(lookup(l, i))] = 1.0f;
      r.texts.targets.push_back(std::move(t));
    } else {
      MOXING_CHECK(!cell.empty(), "{}:{}: the label is empty", r.texts.path, r.texts.lines[i]);
      r.texts.labels.push_back(lookup(cell, i));
    }
  }
}

}  // namespace

LabelledData load_labelled_data(const Config& config, const std::string& problem_type) {
  const DataConfig& dc = config.data;
  const auto d = dc.options<CsvDataOptions>();
  MOXING_CHECK(!dc.path.empty(),
               "config: [data] path is needed: a folder holding train.csv (and validation.csv, "
               "test.csv) or one .csv/.tsv file");
  MOXING_CHECK(fs::exists(dc.path), "[data] path {} does not exist{}", dc.path,
               dc.path.find("data/text") != std::string::npos
                   ? " (scripts/get-text-data fetches the text data sets)"
                   : "");
  std::optional<std::string> train_path, val_path, test_path;
  if (fs::is_directory(dc.path)) {
    train_path = find_table(dc.path, {"train"});
    MOXING_CHECK(train_path.has_value(), "{}: no train.csv or train.tsv in the folder", dc.path);
    val_path = find_table(dc.path, {"validation", "val", "dev"});
    test_path = find_table(dc.path, {"test"});
  } else {
    train_path = dc.path;
  }
  LabelledData out;
  out.problem_type = problem_type;
  RawTable train = read_table(*train_path, d);
  std::optional<RawTable> val, test;
  if (val_path) {
    val = read_table(*val_path, d);
  } else if (dc.val_fraction > 0) {
    // the validation split: a seeded share of the training rows
    const int64_t n = static_cast<int64_t>(train.cells.size());
    Generator gen(data::mix_seed(static_cast<uint64_t>(config.train.seed), 0x7e57));
    std::vector<int64_t> perm = data::permutation(n, gen);
    const auto nval = static_cast<int64_t>(std::llround(static_cast<double>(n) * dc.val_fraction));
    std::vector<char> is_val(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < nval; ++i)
      is_val[static_cast<size_t>(perm[static_cast<size_t>(i)])] = 1;
    RawTable a, b;
    a.texts.path = b.texts.path = train.texts.path;
    for (size_t i = 0; i < train.cells.size(); ++i) {
      RawTable& dst = is_val[i] ? b : a;
      dst.texts.texts.push_back(train.texts.texts[i]);
      if (!train.texts.pairs.empty()) dst.texts.pairs.push_back(train.texts.pairs[i]);
      dst.texts.lines.push_back(train.texts.lines[i]);
      dst.cells.push_back(train.cells[i]);
    }
    train = std::move(a);
    if (!b.cells.empty()) val = std::move(b);
  }
  if (test_path) test = read_table(*test_path, d);

  if (problem_type == kRegression) {
    out.labels = {"LABEL_0"};
  } else if (!d.labels.empty()) {
    out.labels = d.labels;
    // one class gives one logit, whose cross-entropy is 0 whatever the model says
    MOXING_CHECK(problem_type != kSingleLabel || out.labels.size() >= 2,
                 "config: [data] labels lists one label ({}); single-label classification needs "
                 "two or more (to predict one number, set [model] problem_type = \"regression\", "
                 "which takes no labels)",
                 fmt::join(out.labels, ", "));
    std::set<std::string> unique(out.labels.begin(), out.labels.end());
    MOXING_CHECK(unique.size() == out.labels.size(), "config: [data] labels lists a label twice");
  } else {
    std::set<std::string> seen;
    for (const std::string& cell : train.cells) {
      if (problem_type == kMultiLabel) {
        for (const std::string& l : split_labels(cell)) seen.insert(l);
      } else if (!cell.empty()) {
        seen.insert(cell);
      }
    }
    out.labels.assign(seen.begin(), seen.end());
    MOXING_CHECK(out.labels.size() >= 2 || problem_type == kMultiLabel,
                 "{}: the training split has {} label(s) ({}); classification needs two or more",
                 train.texts.path, out.labels.size(), fmt::join(out.labels, ", "));
  }
  MOXING_CHECK(d.class_weights.empty() || d.class_weights.size() == out.labels.size(),
               "config: [data] class_weights has {} weights for {} labels ({})",
               d.class_weights.size(), out.labels.size(), fmt::join(out.labels, ", "));
  assign_labels(train, out.labels, problem_type);
  out.train = std::move(train.texts);
  if (val) {
    assign_labels(*val, out.labels, problem_type);
    out.val = std::move(val->texts);
  }
  if (test) {
    assign_labels(*test, out.labels, problem_type);
    out.test = std::move(test->texts);
  }
  return out;
}

}  // namespace moxing::train
