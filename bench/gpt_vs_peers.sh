#!/usr/bin/env bash
# Runs `moxing bench-gpt` and its peers (bench/peer/gpt_torch.py: PyTorch + transformers) on the
# same machine, threads and model, one process per measurement (so each peak memory is its
# own), and prints the ratios the GPT benchmark reports: training-step time (moxing / torch)
# and generation speed (moxing / transformers).
# Usage: bench/gpt_vs_peers.sh [threads] [extra bench-gpt/peer flags, e.g. --layers 2]
# Needs build/release/moxing and python3 with torch and transformers.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
shift || true
moxing=build/release/moxing
export MOXING_NUM_THREADS="$threads"

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }

ours_train=$($moxing bench-gpt --task train --threads "$threads" --json "$@")
peer_train=$(python3 bench/peer/gpt_torch.py --task train --threads "$threads" "$@" 2>/dev/null | tail -1)
ours_gen=$($moxing bench-gpt --task generate --threads "$threads" --json "$@")
peer_gen=$(python3 bench/peer/gpt_torch.py --task generate --threads "$threads" "$@" 2>/dev/null | tail -1)

echo "$ours_train"
echo "$peer_train"
echo "$ours_gen"
echo "$peer_gen"
python3 - "$ours_train" "$peer_train" "$ours_gen" "$peer_gen" <<'PY'
import json, sys
ot, pt, og, pg = (json.loads(a) for a in sys.argv[1:5])
print(f"train step  moxing {ot['step_seconds']:.3f} s  torch {pt['step_seconds']:.3f} s  "
      f"ratio {ot['step_seconds'] / pt['step_seconds']:.2f} (target <= 0.8)  "
      f"peak RSS {ot['peak_rss_mb']:.0f} / {pt['peak_rss_mb']:.0f} MB")
print(f"generate    moxing {og['tokens_per_s']:.1f} tok/s  transformers {pg['tokens_per_s']:.1f} tok/s  "
      f"ratio {og['tokens_per_s'] / pg['tokens_per_s']:.2f} (target >= 1.5)  "
      f"peak RSS {og['peak_rss_mb']:.0f} / {pg['peak_rss_mb']:.0f} MB")
PY
