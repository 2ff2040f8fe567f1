#!/usr/bin/env bash
# Runs `moxing bench-bert` and its peers (bench/peer/bert_torch.py: transformers and
# sentence-transformers) alternately on the same machine and threads, one process per
# measurement, ROUNDS rounds, and prints each side's median and the ratios: BERT-base forward
# time (moxing / transformers, target <= 0.75), sentence embedding throughput with
# all-MiniLM-L6-v2 (moxing / sentence-transformers, target >= 1.5), then WordPiece encode
# throughput against HF tokenizers on the same text column (one thread).
# Usage: bench/bert_vs_peers.sh [rounds=3] [threads="1 2"] [extra bench flags, e.g. --layers 2]
# Environment: PYTHON (default python3) with torch, transformers, sentence-transformers and
# tokenizers; TEXT_DATA (default data/text, made by scripts/get-text-data).
# Needs build/release/moxing.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
threads_list="${2:-1 2}"
shift 2 || shift $# || true
moxing=build/release/moxing
python="${PYTHON:-python3}"
data="${TEXT_DATA:-data/text}"
model="$data/all-MiniLM-L6-v2"
csv="$data/rotten-tomatoes/train.csv"
embed_flags=(--model "$model" --file "$csv" --column text --limit 512 --repeats 3)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
for t in $threads_list; do
  export MOXING_NUM_THREADS="$t" OMP_NUM_THREADS="$t"
  for r in $(seq "$rounds"); do
    echo "{\"round\": $r, \"line\": $($moxing bench-bert --task forward --threads "$t" --repeats 3 --json "$@")}" >>"$log"
    echo "{\"round\": $r, \"line\": $($python bench/peer/bert_torch.py --task forward --threads "$t" --repeats 3 "$@" 2>/dev/null | tail -1)}" >>"$log"
    echo "{\"round\": $r, \"line\": $($moxing bench-bert --task embed --threads "$t" --json "${embed_flags[@]}")}" >>"$log"
    echo "{\"round\": $r, \"line\": $($python bench/peer/bert_torch.py --task embed --threads "$t" "${embed_flags[@]}" 2>/dev/null | tail -1)}" >>"$log"
  done
done
export MOXING_NUM_THREADS=1 OMP_NUM_THREADS=1
ours_tok=$($moxing bench-tokenizer "$model" "$csv" --column text --json)
peer_tok=$($python bench/peer/tokenizer_encode_hf.py "$model" "$csv" --column text --json)

$python - "$log" "$ours_tok" "$peer_tok" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(task, threads, moxing, key):
    v = [r["line"][key] for r in rows if r["line"]["task"] == task
         and r["line"]["threads"] == threads and (r["line"]["peer"] == "moxing") == moxing]
    return statistics.median(v), v
for threads in sorted({r["line"]["threads"] for r in rows}):
    m, mv = med("forward", threads, True, "seconds")
    p, pv = med("forward", threads, False, "seconds")
    print(f"forward {threads} thread(s)  moxing {m:.3f} s {[round(x, 3) for x in mv]}  "
          f"transformers {p:.3f} s {[round(x, 3) for x in pv]}  ratio {m / p:.2f} (target <= 0.75)")
    m, mv = med("embed", threads, True, "sentences_per_s")
    p, pv = med("embed", threads, False, "sentences_per_s")
    print(f"embed   {threads} thread(s)  moxing {m:.1f} sent/s {[round(x, 1) for x in mv]}  "
          f"sentence-transformers {p:.1f} sent/s {[round(x, 1) for x in pv]}  "
          f"ratio {m / p:.2f} (target >= 1.5)")
peers = {r["line"]["peer"] for r in rows if r["line"]["peer"] != "moxing"}
print("peers:", "; ".join(sorted(peers)))
o, p = json.loads(sys.argv[2]), json.loads(sys.argv[3])
for k in ["lines_cold_mbps", "lines_warm_mbps", "whole_cold_mbps", "whole_warm_mbps"]:
    print(f"tokenizer {k:16s} moxing {o[k]:7.2f} MB/s  tokenizers {p[k]:7.2f} MB/s  "
          f"ratio {o[k] / p[k]:.2f}")
if (o["tokens_lines"], o["tokens_whole"]) != (p["tokens_lines"], p["tokens_whole"]):
    print(f"tokenizer token counts differ: moxing {o['tokens_lines']}/{o['tokens_whole']}, "
          f"tokenizers {p['tokens_lines']}/{p['tokens_whole']}")
PY
