"""The llama.cpp side of `moxing bench-llm`: prefill and decode tokens/s of a GGUF model through
llama-cpp-python (llama.cpp built from source), measured as llama-bench does: prefill = one
batch of --prompt-tokens tokens (logits of the last one), decode = --gen-tokens single-token
steps after it. Prints one JSON line, with llama.cpp's system info (the CPU paths it uses).
Usage: python3 bench/peer/llama_cpp_bench.py MODEL.gguf [--threads N] [--prompt-tokens P]
       [--gen-tokens G] [--repeats R]
"""
import argparse
import json
import random
import resource
import statistics
import time

import llama_cpp


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--gen-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    ctx = a.prompt_tokens + a.gen_tokens + 8
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=ctx, n_batch=a.prompt_tokens,
                          n_ubatch=a.prompt_tokens, n_threads=a.threads,
                          n_threads_batch=a.threads, verbose=False, use_mmap=True)
    rng = random.Random(0)
    vocab = llm.n_vocab()
    prompt = [rng.randrange(vocab) for _ in range(a.prompt_tokens)]

    def fresh():
        llm.reset()  # back to an empty context; the KV cache is overwritten from position 0

    def prefill():
        fresh()
        t = time.perf_counter()
        llm.eval(prompt)
        return time.perf_counter() - t

    def decode():
        # the tokens fed are drawn at random: a Python argmax over the vocabulary would cost
        # more than the step itself, and the work per step does not depend on the token
        fresh()
        llm.eval(prompt)
        steps = [rng.randrange(vocab) for _ in range(a.gen_tokens)]
        t = time.perf_counter()
        for tok in steps:
            llm.eval([tok])
        return time.perf_counter() - t

    prefill()
    decode()
    pre = statistics.median(prefill() for _ in range(a.repeats))
    dec = statistics.median(decode() for _ in range(a.repeats))
    print(json.dumps({
        "peer": "llama.cpp", "model": a.model, "threads": a.threads,
        "prompt_tokens": a.prompt_tokens, "gen_tokens": a.gen_tokens,
        "prefill_tokens_per_s": a.prompt_tokens / pre, "decode_tokens_per_s": a.gen_tokens / dec,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "llama_cpp_python": llama_cpp.__version__}))


if __name__ == "__main__":
    main()
