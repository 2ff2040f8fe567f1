// Error type and check macro used everywhere in moxing.
// Messages name the operation and the offending values; they are meant for users.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace moxing {

/// The one exception type moxing throws for user-facing errors.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// Throws moxing::Error with a fmt-formatted message.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace moxing

/// MOXING_CHECK(cond, "fmt {}", args...): throws moxing::Error when cond is false.
#define MOXING_CHECK(cond, ...)    \
  do {                             \
    if (!(cond)) {                 \
      ::moxing::fail(__VA_ARGS__); \
    }                              \
  } while (0)
