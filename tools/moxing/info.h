// `moxing info PATH`: what a safetensors file (or every *.safetensors in a folder, such as a
// checkpoint's model.safetensors and optimizer.safetensors) holds: each tensor's name, dtype
// and shape, the parameter and byte totals, and the metadata. Reads headers; computes nothing.
#pragma once

#include <string>

namespace moxing::tools {

/// Prints the summary (a table, or one JSON object with json) to stdout; returns the process
/// exit code. A missing or malformed file prints "moxing info: <file>: <problem>" to stderr
/// and returns 1.
int run_info(const std::string& path, bool json);

}  // namespace moxing::tools
