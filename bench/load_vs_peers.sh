#!/usr/bin/env bash
# Loads one GPT-2 folder (random weights that transformers saves, GPT-2 small by default) with
# `moxing bench-gpt --task load` and with transformers' from_pretrained, one process each (so
# each peak memory is its own), and prints load time, first-forward time and peak resident
# memory of both and their ratios, against the folder's file size.
# Usage: bench/load_vs_peers.sh [threads] [extra peer flags for the saved model, e.g. --layers 2]
# Needs build/release/moxing and python3 with torch and transformers.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
shift || true
moxing=build/release/moxing
export MOXING_NUM_THREADS="$threads"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

python3 bench/peer/gpt_torch.py --task save --model "$dir/gpt2" "$@" >/dev/null
# the page cache holds the file for both sides: read it once before either measures
cat "$dir"/gpt2/*.safetensors >/dev/null
ours=$($moxing bench-gpt --task load --model "$dir/gpt2" --threads "$threads" --json)
peer=$(python3 bench/peer/gpt_torch.py --task load --model "$dir/gpt2" --threads "$threads" 2>/dev/null | tail -1)
echo "$ours"
echo "$peer"
python3 - "$ours" "$peer" <<'PY'
import json, sys
o, p = (json.loads(a) for a in sys.argv[1:3])
assert o["parameters"] == p["parameters"], (o["parameters"], p["parameters"])
rel = abs(o["logits_sum"] - p["logits_sum"]) / max(1.0, abs(p["logits_sum"]))
print(f"load           moxing {o['seconds']:.3f} s  transformers {p['seconds']:.3f} s  "
      f"ratio {o['seconds'] / p['seconds']:.3f}")
print(f"first forward  moxing {o['first_forward_seconds']:.3f} s  transformers "
      f"{p['first_forward_seconds']:.3f} s")
print(f"peak RSS       moxing {o['peak_rss_mb']:.0f} MiB  transformers {p['peak_rss_mb']:.0f} MiB  "
      f"file {o['file_mb']:.0f} MiB  (moxing / file {o['peak_rss_mb'] / o['file_mb']:.2f}, "
      f"transformers / file {p['peak_rss_mb'] / o['file_mb']:.2f})")
print(f"logits agree   relative difference of the sums {rel:.1e}")
PY
