#!/usr/bin/env bash
# Prefill and decode tokens/s of moxing (`moxing bench-llm`) against llama.cpp
# (bench/peer/llama_cpp_bench.py, llama-cpp-python built from source) on the same GGUF files,
# threads and machine: SmolLM2-135M-Instruct Q4_1 (scripts/get-llm) and a GPT-2-small-sized model
# with random weights (bench/peer/make_gpt2_small.py) that `moxing quantize` writes as f32, q8_0,
# q4_0 and q4_k GGUF files. Each measurement is its own process. Prints both sides' figures, the
# ratios, and moxing's decode speed as a fraction of the memory-bandwidth bound.
# Usage: bench/llm_vs_llama_cpp.sh [threads]   (PYTHON: a python with llama_cpp, torch, transformers)
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-1}"
py="${PYTHON:-python3}"
moxing=build/release/moxing
scripts/get-llm >/dev/null
gpt2=data/bench/gpt2-small
"$py" bench/peer/make_gpt2_small.py "$gpt2" >/dev/null
models=(data/llm/SmolLM2-135M-Instruct.Q4_1.gguf)
for t in f32 q8_0 q4_0 q4_k; do
  f="$gpt2/gpt2-small-$t.gguf"
  if [[ ! -f "$f" ]]; then
    emb=q8_0
    [[ $t == f32 ]] && emb=f32
    $moxing quantize "$gpt2" --out "$f" --type "$t" --embeddings "$emb" >/dev/null
  fi
  models+=("$f")
done
for m in "${models[@]}"; do
  ours=$(MOXING_NUM_THREADS="$threads" $moxing bench-llm "$m" --threads "$threads" --json)
  theirs=$("$py" bench/peer/llama_cpp_bench.py "$m" --threads "$threads" | tail -1)
  python3 - "$ours" "$theirs" <<'PY'
import json, os, sys
o, t = (json.loads(a) for a in sys.argv[1:3])
name = os.path.basename(o["model"])
print(f"{name}: prefill moxing {o['prefill_tokens_per_s']:.1f} tok/s, llama.cpp "
      f"{t['prefill_tokens_per_s']:.1f} (ratio {o['prefill_tokens_per_s'] / t['prefill_tokens_per_s']:.2f}); "
      f"decode moxing {o['decode_tokens_per_s']:.1f}, llama.cpp {t['decode_tokens_per_s']:.1f} "
      f"(ratio {o['decode_tokens_per_s'] / t['decode_tokens_per_s']:.2f}); moxing at "
      f"{100 * o['bandwidth_bound_fraction']:.0f}% of the bandwidth bound "
      f"({o['weight_bytes_per_token'] / 2**20:.1f} MiB/token, triad {o['triad_gbps']:.1f} GB/s), "
      f"quant path {o['quant_isa']}")
print(f"  llama.cpp: {t['system_info']}")
PY
done
