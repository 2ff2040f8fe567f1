// The merge loop of HF's BpeTrainer, shared by byte-level BPE training and WordPiece training
// (which HF runs as BPE training with a "##" continuing-subword prefix).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moxing::tokenizers::detail {

/// Merges the most frequent adjacent pair of ids (ties: the smaller pair), over words (each a
/// list of ids, counts[i] times in the corpus), until tokens has vocab_size entries or no pair
/// is seen min_frequency times. A merge's token is merged_token(a, b), appended to tokens and
/// vocab when new. Returns the merges in order; words end up merged. what prefixes the
/// progress lines.
std::vector<std::pair<int32_t, int32_t>> learn_merges(
    std::vector<std::vector<int32_t>>& words, const std::vector<int64_t>& counts,
    std::vector<std::string>& tokens, std::unordered_map<std::string, int32_t>& vocab,
    int64_t vocab_size, int64_t min_frequency, bool progress, const char* what,
    const std::function<std::string(int32_t, int32_t)>& merged_token);

}  // namespace moxing::tokenizers::detail
