// Loads a GPT-2 model folder (config.json, model.safetensors, tokenizer.json: one written by
// `moxing train` or by transformers' save_pretrained) and continues a prompt, printing each
// piece of text as soon as its tokens are chosen.
//   build/release/example_gpt_generate runs/demo-gpt/final "春风" 48
#include <cstdlib>
#include <iostream>

#include "moxing/moxing.h"

using namespace moxing;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " MODEL_DIR PROMPT [NEW_TOKENS]\n";
    return 2;
  }
  try {
    auto model = models::GPT::from_pretrained(argv[1]);
    auto tokenizer = tokenizers::load_tokenizer(argv[1]);
    std::vector<int32_t> prompt = tokenizer->encode(argv[2]);

    models::SamplingConfig sampling;
    sampling.max_new_tokens = argc > 3 ? std::atoi(argv[3]) : 48;
    sampling.temperature = 0.8;
    sampling.top_k = 20;
    sampling.seed = 1;
    if (auto eos = tokenizer->eos_token_id()) sampling.stop_token_ids = {*eos};

    tokenizers::StreamDecoder text(*tokenizer);  // whole UTF-8 characters only
    std::cout << argv[2] << std::flush;
    models::generate(*model, prompt, sampling, [&](int32_t id) {
      if (!tokenizer->is_special(id)) std::cout << text.push(id) << std::flush;
      return true;
    });
    std::cout << text.finish() << "\n";
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
