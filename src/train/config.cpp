// Training configuration: TOML in (toml++), TOML and JSON out, `--set` overrides, checks.
#include "moxing/train/config.h"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <type_traits>

#include "moxing/core/error.h"
#include "moxing/models/family.h"
#include "moxing/train/task.h"

namespace moxing::train {

namespace {

// The sections with a fixed field table; [model] is the family's (ModelConfig).
template <class F>
void visit_sections(Config& c, F&& f) {
  f("data", c.data);
  f("optim", c.optim);
  f("schedule", c.schedule);
  f("train", c.train);
}

template <class Section>
std::string section_keys(Section s) {
  std::string keys;
  s.visit([&](const char* key, auto&) { keys += (keys.empty() ? "" : ", ") + std::string(key); });
  return keys;
}

std::string node_type_name(const toml::node& node) {
  if (node.is_string()) return "a string";
  if (node.is_integer()) return "an integer";
  if (node.is_floating_point()) return "a float";
  if (node.is_boolean()) return "a boolean";
  if (node.is_array()) return "an array";
  if (node.is_table()) return "a table";
  return "a date or time";
}

template <class T>
const char* wanted_type_name() {
  if constexpr (std::is_same_v<T, std::string>) return "a string";
  if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  if constexpr (std::is_same_v<T, double>) return "a number";
  if constexpr (std::is_same_v<T, bool>) return "a boolean";
  if constexpr (std::is_same_v<T, std::vector<int64_t>>) return "an array of integers";
  if constexpr (std::is_same_v<T, std::vector<std::string>>) return "an array of strings";
  if constexpr (std::is_same_v<T, std::vector<double>>) return "an array of numbers";
  return "?";
}

// Assigns a TOML value to a field; false when the value has the wrong type.
template <class T>
bool assign(T& field, const toml::node& node) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (!node.is_string()) return false;
    field = *node.value<std::string>();
  } else if constexpr (std::is_same_v<T, int64_t>) {
    if (!node.is_integer()) return false;
    field = *node.value<int64_t>();
  } else if constexpr (std::is_same_v<T, double>) {
    if (!node.is_number()) return false;
    field = *node.value<double>();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!node.is_boolean()) return false;
    field = *node.value<bool>();
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    const toml::array* arr = node.as_array();
    if (arr == nullptr) return false;
    T values;
    for (const toml::node& e : *arr) {
      if (!e.is_string()) return false;
      values.push_back(*e.value<std::string>());
    }
    field = std::move(values);
  } else if constexpr (std::is_same_v<T, std::vector<double>>) {
    const toml::array* arr = node.as_array();
    if (arr == nullptr) return false;
    T values;
    for (const toml::node& e : *arr) {
      if (!e.is_number()) return false;
      values.push_back(*e.value<double>());
    }
    field = std::move(values);
  } else {
    const toml::array* arr = node.as_array();
    if (arr == nullptr) return false;
    T values;
    for (const toml::node& e : *arr) {
      if (!e.is_integer()) return false;
      values.push_back(*e.value<int64_t>());
    }
    field = std::move(values);
  }
  return true;
}

template <class Section>
void set_key(Section& section, const std::string& section_name, const std::string& key,
             const toml::node& node, const std::string& source) {
  bool found = false;
  section.visit([&](const char* k, auto& field) {
    if (key != k) return;
    found = true;
    using T = std::remove_reference_t<decltype(field)>;
    MOXING_CHECK(assign(field, node), "{}: [{}] {} must be {}, got {}", source, section_name, key,
                 wanted_type_name<T>(), node_type_name(node));
  });
  MOXING_CHECK(found, "{}: unknown key '{}' in [{}] (valid: {})", source, key, section_name,
               section_keys(Section{}));
}

template <class Section>
bool has_key(Section& section, const std::string& key) {
  bool found = false;
  section.visit([&](const char* k, auto&) { found = found || key == k; });
  return found;
}

nlohmann::json toml_to_json(const toml::node& node) {
  if (node.is_string()) return *node.value<std::string>();
  if (node.is_integer()) return *node.value<int64_t>();
  if (node.is_floating_point()) return *node.value<double>();
  if (node.is_boolean()) return *node.value<bool>();
  if (const toml::array* arr = node.as_array()) {
    nlohmann::json j = nlohmann::json::array();
    for (const toml::node& e : *arr) j.push_back(toml_to_json(e));
    return j;
  }
  if (const toml::table* t = node.as_table()) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : *t) j[std::string(k.str())] = toml_to_json(v);
    return j;
  }
  return node_type_name(node);  // a date or time: the resolver names it as a wrong type
}

void set_model_key(ModelConfig& m, const std::string& key, const nlohmann::json& value,
                   const std::string& source) {
  if (key == "name" || key == "pretrained") {
    MOXING_CHECK(value.is_string(), "{}: [model] {} must be a string, got {}", source, key,
                 value.dump());
    (key == "name" ? m.name : m.pretrained) = value.get<std::string>();
    return;
  }
  m.fields[key] = value;
}

void set_in_config(Config& c, const std::string& section_name, const std::string& key,
                   const toml::node& node, const std::string& source) {
  if (section_name == "model") {
    set_model_key(c.model, key, toml_to_json(node), source);
    return;
  }
  if (section_name == "data" && !has_key(c.data, key)) {  // a key of the data source's table
    c.data.fields[key] = toml_to_json(node);
    return;
  }
  bool found = false;
  visit_sections(c, [&](const char* name, auto& section) {
    if (section_name != name) return;
    found = true;
    set_key(section, section_name, key, node, source);
  });
  MOXING_CHECK(found, "{}: unknown section [{}] (valid: model, data, optim, schedule, train)",
               source, section_name);
}

std::string toml_string(const std::string& s) { return nlohmann::json(s).dump(); }

std::string toml_value(const std::string& v) { return toml_string(v); }
std::string toml_value(int64_t v) { return fmt::format("{}", v); }
std::string toml_value(bool v) { return v ? "true" : "false"; }
std::string toml_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}
template <class T>
std::string toml_value(const std::vector<T>& v) {
  std::vector<std::string> items;
  for (const auto& e : v) items.push_back(toml_value(e));
  return fmt::format("[{}]", fmt::join(items, ", "));
}
std::string toml_value(const nlohmann::json& j) {
  if (j.is_string()) return toml_value(j.get<std::string>());
  if (j.is_boolean()) return toml_value(j.get<bool>());
  if (j.is_number_integer()) return toml_value(j.get<int64_t>());
  if (j.is_number()) return toml_value(j.get<double>());
  if (j.is_array()) {
    std::vector<std::string> items;
    for (const auto& e : j) items.push_back(toml_value(e));
    return fmt::format("[{}]", fmt::join(items, ", "));
  }
  return j.dump();
}

// The keys of the one [model] table every family shared before families had their own: a
// config.toml or trainer_state.json written then holds all of them.
const char* kLegacyModelKeys[] = {"hidden", "channels", "kernel_size", "n_layer",
                                  "n_head", "n_embd",   "n_positions", "dropout"};

// The keys of the one [data] table every source shared before sources had their own.
const char* kLegacyDataKeys[] = {"image_size", "channels",  "normalize",  "files",
                                 "format",     "tokenizer", "vocab_size", "invalid_utf8"};

// The data source's keys with their defaults, as the task reads them; the keys as given when
// the task has no table.
nlohmann::json resolved_data_fields(const Config& c) {
  std::optional<nlohmann::json> f = make_task(task_name(c), c)->data_fields();
  return f ? *f : c.data.fields;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

template <class T>
void json_assign(T& field, const nlohmann::json& j, const std::string& where) {
  try {
    field = j.get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("config JSON: {} must be {}, got {}", where, wanted_type_name<T>(), j.dump());
  }
}

}  // namespace

namespace detail {
bool legacy_data_fields(const nlohmann::json& fields) {
  for (const char* k : kLegacyDataKeys) {
    if (!fields.contains(k)) return false;
  }
  return true;
}
}  // namespace detail

void check_choice(const std::string& what, const std::string& value,
                  const std::vector<std::string>& valid) {
  for (const auto& v : valid) {
    if (v == value) return;
  }
  fail("config: {} '{}' is not known (valid: {})", what, value, fmt::join(valid, ", "));
}

std::vector<std::string> ModelConfig::valid_keys() const {
  const models::Family& family = models::find_family(name);
  std::vector<std::string> keys = {"name", "pretrained"};
  for (const auto& k : family.keys()) {
    if (!contains(family.data_keys, k)) keys.push_back(k);
  }
  for (const auto& [k, targets] : family.shorthands) keys.push_back(k);
  return keys;
}

nlohmann::json ModelConfig::resolved(const std::string& where) const {
  const models::Family& family = models::find_family(name);
  std::vector<std::string> valid = valid_keys();
  nlohmann::json f = fields;
  bool legacy = true;
  for (const char* k : kLegacyModelKeys) legacy = legacy && f.contains(k);
  std::vector<std::string> given;
  for (const auto& [k, v] : f.items()) given.push_back(k);
  for (const std::string& k : given) {
    if (contains(valid, k)) continue;
    if (legacy) {  // a resolved config of an older version: keys of other families
      f.erase(k);
      continue;
    }
    MOXING_CHECK(!contains(family.data_keys, k),
                 "{}: [model] {} is taken from the data for {}; remove it", where, k, family.name);
    fail("{}: unknown key '{}' in [model] for {} (valid: {})", where, k, family.name,
         fmt::join(valid, ", "));
  }
  for (const auto& [shorthand, targets] : family.shorthands) {
    if (!f.contains(shorthand)) continue;
    for (const auto& t : targets) {
      if (!f.contains(t)) f[t] = f[shorthand];
    }
    f.erase(shorthand);
  }
  nlohmann::json r = family.resolve(f, where + ": [model]", false);
  for (const auto& k : family.data_keys) r.erase(k);
  return r;
}

Config Config::from_toml(const std::string& text, const std::string& name) {
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    fail("{}:{}:{}: {}", name, where.line, where.column, e.description());
  }
  Config c;
  for (const auto& [section_key, section_node] : root) {
    std::string section_name(section_key.str());
    const toml::table* table = section_node.as_table();
    if (table == nullptr) {
      bool known = section_name == "model";
      visit_sections(c, [&](const char* n, auto&) { known = known || section_name == n; });
      MOXING_CHECK(known, "{}: unknown section [{}] (valid: model, data, optim, schedule, train)",
                   name, section_name);
      fail("{}: '{}' must be a table [{}], got {}", name, section_name, section_name,
           node_type_name(section_node));
    }
    for (const auto& [key, node] : *table) {
      set_in_config(c, section_name, std::string(key.str()), node, name);
    }
  }
  c.validate();
  return c;
}

Config Config::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MOXING_CHECK(in.good(), "cannot open config file {}", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return from_toml(ss.str(), path);
}

void Config::set(const std::string& assignment) {
  auto eq = assignment.find('=');
  auto dot = assignment.find('.');
  MOXING_CHECK(eq != std::string::npos && dot != std::string::npos && dot < eq,
               "--set {}: expected section.key=value, e.g. optim.lr=3e-4", assignment);
  std::string section = assignment.substr(0, dot);
  std::string key = assignment.substr(dot + 1, eq - dot - 1);
  std::string value = assignment.substr(eq + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"v", value}};  // a bare word: the string itself
  }
  Config changed = *this;  // a failed --set leaves the config as it was
  set_in_config(changed, section, key, *parsed.get("v"), "--set " + assignment);
  changed.validate();
  *this = std::move(changed);
}

void Config::validate() const {
  (void)model.resolved();
  MOXING_CHECK(model.pretrained.empty() || std::filesystem::is_directory(model.pretrained),
               "config: [model] pretrained {} is not a folder (a model folder with config.json "
               "and model.safetensors)",
               model.pretrained);
  MOXING_CHECK(data.val_fraction >= 0 && data.val_fraction < 1,
               "config: [data] val_fraction must be in [0, 1), got {}", data.val_fraction);
  MOXING_CHECK(data.batch_size > 0, "config: [data] batch_size must be > 0, got {}",
               data.batch_size);
  MOXING_CHECK(data.eval_batch_size > 0, "config: [data] eval_batch_size must be > 0, got {}",
               data.eval_batch_size);
  MOXING_CHECK(data.num_workers >= 0, "config: [data] num_workers must be >= 0, got {}",
               data.num_workers);
  check_choice("[optim] name", optim.name, {"sgd", "adam", "adamw", "rmsprop", "adagrad"});
  MOXING_CHECK(optim.lr >= 0, "config: [optim] lr must be >= 0, got {}", optim.lr);
  check_choice("[schedule] name", schedule.name,
               {"constant", "cosine", "linear", "step", "exponential"});
  MOXING_CHECK(schedule.warmup_steps >= 0, "config: [schedule] warmup_steps must be >= 0, got {}",
               schedule.warmup_steps);
  MOXING_CHECK(schedule.step_size > 0, "config: [schedule] step_size must be > 0, got {}",
               schedule.step_size);
  MOXING_CHECK(train.epochs > 0 || train.steps > 0,
               "config: [train] needs epochs > 0 or steps > 0");
  MOXING_CHECK(train.epochs >= 0 && train.steps >= 0,
               "config: [train] epochs and steps must be >= 0");
  MOXING_CHECK(train.eval_every >= 0 && train.checkpoint_every >= 0,
               "config: [train] eval_every and checkpoint_every must be >= 0");
  MOXING_CHECK(train.grad_accum >= 1, "config: [train] grad_accum must be >= 1, got {}",
               train.grad_accum);
  MOXING_CHECK(train.clip_grad_norm >= 0, "config: [train] clip_grad_norm must be >= 0, got {}",
               train.clip_grad_norm);
  MOXING_CHECK(train.seed >= 0, "config: [train] seed must be >= 0, got {}", train.seed);
  MOXING_CHECK(train.threads >= 0, "config: [train] threads must be >= 0, got {}", train.threads);
  MOXING_CHECK(train.log_every >= 1, "config: [train] log_every must be >= 1, got {}",
               train.log_every);
  MOXING_CHECK(train.best_metric.size() > 4 && train.best_metric.compare(0, 4, "val/") == 0,
               "config: [train] best_metric must be val/<metric> (val/accuracy, val/loss, "
               "val/f1_macro, ...), got '{}'",
               train.best_metric);
  MOXING_CHECK(train.keep_checkpoints >= 1, "config: [train] keep_checkpoints must be >= 1, got {}",
               train.keep_checkpoints);
  make_task(task_name(*this), *this)->check_data_config();
}

std::string Config::to_toml() const {
  std::string out = fmt::format("[model]\nname = {}\npretrained = {}\n", toml_string(model.name),
                                toml_string(model.pretrained));
  const nlohmann::json fields = model.resolved();
  for (const auto& [k, v] : fields.items()) {
    if (!v.is_null()) out += fmt::format("{} = {}\n", k, toml_value(v));  // TOML has no null
  }
  Config copy = *this;
  const nlohmann::json data_fields = resolved_data_fields(*this);
  visit_sections(copy, [&](const char* name, auto& section) {
    out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", name);
    section.visit([&](const char* key, auto& field) {
      out += fmt::format("{} = {}\n", key, toml_value(field));
    });
    if (std::string(name) != "data") return;
    for (const auto& [k, v] : data_fields.items()) {
      if (!v.is_null()) out += fmt::format("{} = {}\n", k, toml_value(v));
    }
  });
  return out;
}

nlohmann::json Config::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  nlohmann::json m = model.resolved();
  m["name"] = model.name;
  m["pretrained"] = model.pretrained;
  j["model"] = m;
  Config copy = *this;
  visit_sections(copy, [&](const char* name, auto& section) {
    nlohmann::json s = nlohmann::json::object();
    section.visit([&](const char* key, auto& field) { s[key] = field; });
    j[name] = s;
  });
  const nlohmann::json data_fields = resolved_data_fields(*this);
  for (const auto& [k, v] : data_fields.items()) j["data"][k] = v;
  return j;
}

Config Config::from_json(const nlohmann::json& j) {
  MOXING_CHECK(j.is_object(), "config JSON must be an object, got {}", j.dump());
  Config c;
  if (j.contains("model")) {
    MOXING_CHECK(j["model"].is_object(), "config JSON: [model] must be an object");
    for (const auto& [k, v] : j["model"].items()) set_model_key(c.model, k, v, "config JSON");
  }
  visit_sections(c, [&](const char* name, auto& section) {
    if (!j.contains(name)) return;
    const nlohmann::json& s = j.at(name);
    section.visit([&](const char* key, auto& field) {
      if (s.contains(key)) json_assign(field, s.at(key), fmt::format("[{}] {}", name, key));
    });
  });
  if (j.contains("data") && j["data"].is_object()) {
    for (const auto& [k, v] : j["data"].items()) {
      if (!has_key(c.data, k)) c.data.fields[k] = v;
    }
  }
  c.validate();
  return c;
}

}  // namespace moxing::train
