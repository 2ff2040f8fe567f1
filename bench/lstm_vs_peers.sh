#!/usr/bin/env bash
# Runs `moxing bench-lstm` and its PyTorch peer (bench/peer/lstm_torch.py) on the same machine,
# threads and shape (2-layer LSTM, input and hidden 512, batch 32, 100 steps unless flags say
# otherwise), one process each, and prints the time ratios moxing / torch (below 1: moxing is
# faster) for forward + backward and for the forward alone.
# Usage: bench/lstm_vs_peers.sh [threads] [extra flags for both, e.g. --steps 50]
# Needs build/release/moxing and python3 with torch (PYTHON overrides the interpreter).
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
shift || true
moxing=build/release/moxing
python="${PYTHON:-python3}"
export MOXING_NUM_THREADS="$threads"

ours=$($moxing bench-lstm --threads "$threads" --json "$@")
peer=$("$python" bench/peer/lstm_torch.py --threads "$threads" "$@" 2>/dev/null | tail -1)
echo "$ours"
echo "$peer"
"$python" - "$ours" "$peer" <<'PY'
import json, sys
o, p = (json.loads(a) for a in sys.argv[1:3])
for k, what in (("train_seconds", "forward + backward"), ("forward_seconds", "forward only")):
    print(f"{what:20s} moxing {o[k]:.3f} s  torch {p[k]:.3f} s  ratio {o[k] / p[k]:.2f}")
PY
