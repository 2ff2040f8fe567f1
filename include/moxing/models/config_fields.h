// A model config declared once as a field table: a struct whose visit(f) calls f("key", member)
// for each field, with Hugging Face's key names. From that table come reading config.json or a
// TOML [model] section (types checked, defaults kept, unknown keys kept or refused), writing
// config.json, and the list of valid keys in error messages (gemma.cpp's configs.h idea).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "moxing/core/error.h"

namespace moxing::models {

namespace detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
const char* json_type_wanted() {
  if constexpr (is_optional<T>::value) {
    return json_type_wanted<typename T::value_type>();
  } else {
    if constexpr (std::is_same_v<T, std::string>) return "a string";
    if constexpr (std::is_same_v<T, int64_t>) return "an integer";
    if constexpr (std::is_same_v<T, double>) return "a number";
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    if constexpr (std::is_same_v<T, std::vector<int64_t>>) return "an array of integers";
    if constexpr (std::is_same_v<T, std::vector<double>>) return "an array of numbers";
    if constexpr (std::is_same_v<T, std::vector<std::string>>) return "an array of strings";
    if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
      return "an object of strings";
    }
    if constexpr (std::is_same_v<T, std::map<std::string, int64_t>>) {
      return "an object of integers";
    }
    return "?";
  }
}

// Reads j into field; false when j has the wrong type. null keeps the default, except for an
// optional, which it resets.
template <class T>
bool json_read(T& field, const nlohmann::json& j) {
  if constexpr (is_optional<T>::value) {
    if (j.is_null()) {
      field.reset();
      return true;
    }
    typename T::value_type value{};
    if (!json_read(value, j)) return false;
    field = std::move(value);
    return true;
  } else {
    if (j.is_null()) return true;
    if constexpr (std::is_same_v<T, std::string>) {
      if (!j.is_string()) return false;
    } else if constexpr (std::is_same_v<T, int64_t>) {
      if (!j.is_number_integer()) return false;
    } else if constexpr (std::is_same_v<T, double>) {
      if (!j.is_number()) return false;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!j.is_boolean()) return false;
    } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
      if (!j.is_array()) return false;
      for (const auto& e : j)
        if (!e.is_number_integer()) return false;
    } else if constexpr (std::is_same_v<T, std::vector<double>>) {
      if (!j.is_array()) return false;
      for (const auto& e : j)
        if (!e.is_number()) return false;
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      if (!j.is_array()) return false;
      for (const auto& e : j)
        if (!e.is_string()) return false;
    } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
      if (!j.is_object()) return false;
      for (const auto& e : j)
        if (!e.is_string()) return false;
    } else if constexpr (std::is_same_v<T, std::map<std::string, int64_t>>) {
      if (!j.is_object()) return false;
      for (const auto& e : j)
        if (!e.is_number_integer()) return false;
    }
    field = j.get<T>();
    return true;
  }
}

template <class T>
nlohmann::json json_write(const T& field) {
  if constexpr (is_optional<T>::value) {
    return field ? nlohmann::json(*field) : nlohmann::json(nullptr);
  } else {
    return nlohmann::json(field);
  }
}

}  // namespace detail

/// The keys of a config struct, in table order.
template <class C>
std::vector<std::string> config_keys() {
  C c;
  std::vector<std::string> keys;
  c.visit([&](const char* key, auto&) { keys.emplace_back(key); });
  return keys;
}

/// Reads the fields of C from a JSON object. where names the source in errors ("config.json",
/// "[model]"). Keys that are not fields go to *unknown when it is given (config.json keeps them
/// and writes them back); without it they are an error listing the valid keys.
template <class C>
C config_from_json(const nlohmann::json& j, const std::string& where,
                   nlohmann::json* unknown = nullptr) {
  MOXING_CHECK(j.is_object(), "{}: expected a JSON object, got {}", where, j.dump());
  C c;
  std::vector<std::string> keys = config_keys<C>();
  for (const auto& item : j.items()) {
    // named copies: clang 14 cannot capture structured bindings in the lambda below
    const std::string key = item.key();
    const nlohmann::json& value = item.value();
    bool found = false;
    c.visit([&](const char* k, auto& field) {
      if (key != k) return;
      found = true;
      using T = std::remove_reference_t<decltype(field)>;
      MOXING_CHECK(detail::json_read(field, value), "{}: \"{}\" must be {}, got {}", where, key,
                   detail::json_type_wanted<T>(), value.dump());
    });
    if (found) continue;
    MOXING_CHECK(unknown != nullptr, "{}: unknown key '{}' (valid: {})", where, key,
                 fmt::join(keys, ", "));
    (*unknown)[key] = value;
  }
  // fields that follow from others when the source leaves them out (BERT's num_labels from
  // id2label, as transformers derives it)
  if constexpr (requires(C & cc, const nlohmann::json& jj) { cc.after_read(jj); }) c.after_read(j);
  return c;
}

/// Every field of c as a JSON object, in table order.
template <class C>
nlohmann::json config_to_json(const C& config) {
  C c = config;
  nlohmann::json j = nlohmann::json::object();
  c.visit([&](const char* key, auto& field) { j[key] = detail::json_write(field); });
  return j;
}

}  // namespace moxing::models
