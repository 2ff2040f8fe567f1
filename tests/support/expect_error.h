// expect_error(f, part): the test fails unless f throws a moxing::Error whose message contains
// part; a failure shows the message and the caller's line.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <source_location>
#include <string>

#include "moxing/core/error.h"

namespace moxing::testing {

inline void expect_error(const std::function<void()>& f, const std::string& part,
                         std::source_location where = std::source_location::current()) {
  try {
    f();
  } catch (const Error& e) {
    if (std::string(e.what()).find(part) == std::string::npos) {
      ADD_FAILURE_AT(where.file_name(), static_cast<int>(where.line()))
          << "the error does not contain: " << part << "\nits message: " << e.what();
    }
    return;
  }
  ADD_FAILURE_AT(where.file_name(), static_cast<int>(where.line()))
      << "no error; expected one containing: " << part;
}

}  // namespace moxing::testing
