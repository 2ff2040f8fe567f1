#!/usr/bin/env bash
# Fine-tunes one BERT text classifier with `moxing train CONFIG` and with its PyTorch peer
# (bench/peer/bert_cls_torch.py, the config's hyper-parameters) for each seed, runs the tf-idf
# baseline (bench/peer/tfidf_baseline.py, word and char) once, and prints a markdown table:
# test macro-F1 of both per seed and their means, the difference in points, seconds per epoch
# of both and the ratio (target moxing / torch <= 0.8), and the baseline's macro-F1.
# It does not make moxing read DATA and MODEL: it warns when CONFIG names either path nowhere.
# Usage: bench/bert_cls_vs_peers.sh [--smoke] [--peers-only] CONFIG DATA MODEL [seeds...]
#   seeds default to 1 2 3; moxing writes runs/cmp-<config name>-<seed>, the peers
#   runs/cmp-<config name>-peers/. --smoke: 20 steps a side, into *-smoke-* folders that are
#   replaced on each run, times per step; --peers-only skips moxing (checks the peer side).
# Needs build/release/moxing and python3 (3.11+) with torch, transformers and scikit-learn;
# PYTHON=/path/to/python picks another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
moxing=build/release/moxing

smoke=0
peers_only=0
args=()
for a in "$@"; do
  case "$a" in
    --smoke) smoke=1 ;;
    --peers-only) peers_only=1 ;;
    *) args+=("$a") ;;
  esac
done
if [ "${#args[@]}" -lt 3 ]; then
  sed -n '8,13s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
config="${args[0]}" data="${args[1]}" model="${args[2]}"
seeds=("${args[@]:3}")
[ "${#seeds[@]}" -gt 0 ] || seeds=(1 2 3)
name=$(basename "$config" .toml)
tag="cmp-$name"
[ "$smoke" = 1 ] && tag="cmp-$name-smoke"
peers="runs/$tag-peers"
mkdir -p "$peers"

# The peer's flags from the config; a key the config leaves out keeps the peer's default, and a
# setting the peer can't follow (optimizer, betas, schedule) is reported on stderr.
mapfile -t peer_flags < <("$python" - "$config" "$data" "$model" <<'PY'
import os, sys, tomllib
path, data, model = sys.argv[1:4]
with open(path, "rb") as f:
    c = tomllib.load(f)
flags = []
def flag(section, key, name):
    v = c.get(section, {}).get(key)
    if v is not None:
        flags.extend([name, str(v)])
flag("optim", "lr", "--lr")
flag("optim", "weight_decay", "--weight-decay")
flag("data", "batch_size", "--batch-size")
flag("data", "max_length", "--max-length")
flag("data", "text_column", "--text-column")
flag("data", "label_column", "--label-column")
flag("train", "epochs", "--epochs")
flag("train", "clip_grad_norm", "--max-grad-norm")
flag("schedule", "warmup_steps", "--warmup-steps")
flags.extend(["--threads", str(c.get("train", {}).get("threads", 2))])
fixed = {("optim", "name"): "adamw", ("optim", "beta1"): 0.9, ("optim", "beta2"): 0.999,
         ("optim", "eps"): 1e-8, ("schedule", "name"): "linear"}
for (section, key), peer in fixed.items():
    v = c.get(section, {}).get(key)
    if v is not None and v != peer:
        print(f"warning: {path} sets [{section}] {key} = {v!r}; the torch peer uses {peer!r}",
              file=sys.stderr)
def strings(x):
    if isinstance(x, dict):
        for v in x.values(): yield from strings(v)
    elif isinstance(x, list):
        for v in x: yield from strings(v)
    elif isinstance(x, str):
        yield x
named = {os.path.realpath(os.path.join(base, s)) for s in strings(c)
         for base in (".", os.path.dirname(path))}
for what, p in (("DATA", data), ("MODEL", model)):
    if os.path.realpath(p) not in named:
        print(f"warning: {path} does not name {what} {p}; moxing reads the config's own paths",
              file=sys.stderr)
print("\n".join(flags))
PY
)
[ "${#peer_flags[@]}" -gt 0 ] || { echo "could not read $config" >&2; exit 1; }
threads=2
columns=()
for ((i = 0; i < ${#peer_flags[@]}; i += 2)); do
  case "${peer_flags[i]}" in
    --threads) threads="${peer_flags[i + 1]}" ;;
    --text-column | --label-column) columns+=("${peer_flags[i]}" "${peer_flags[i + 1]}") ;;
  esac
done
export MOXING_NUM_THREADS="$threads"
mox_smoke=()
peer_smoke=()
if [ "$smoke" = 1 ]; then
  mox_smoke=(--set train.steps=20)
  peer_smoke=(--max-steps 20)
fi

for s in "${seeds[@]}"; do
  if [ "$peers_only" = 0 ]; then
    out="runs/$tag-$s"
    if [ -e "$out" ]; then
      if [ "$smoke" = 1 ]; then
        rm -rf "$out"
      else
        echo "$out exists: remove it or pick other seeds" >&2
        exit 1
      fi
    fi
    echo "moxing seed $s -> $out" >&2
    "$moxing" train "$config" --set "train.seed=$s" "${mox_smoke[@]}" --out "$out" --json \
      >"$peers/moxing-$s.json"
  fi
  echo "torch seed $s -> $peers/torch-$s.json" >&2
  "$python" bench/peer/bert_cls_torch.py --model "$model" --data "$data" "${peer_flags[@]}" \
    --seed "$s" "${peer_smoke[@]}" --out "$peers/torch-$s.json" >/dev/null 2>"$peers/torch-$s.log" ||
    { tail -5 "$peers/torch-$s.log" >&2; exit 1; }
done
for analyzer in word char; do
  echo "tf-idf baseline ($analyzer) -> $peers/tfidf-$analyzer.json" >&2
  "$python" bench/peer/tfidf_baseline.py --data "$data" --analyzer "$analyzer" "${columns[@]}" \
    >"$peers/tfidf-$analyzer.json"
done

"$python" - "$peers" "runs/$tag" "$smoke" "$peers_only" "${seeds[@]}" <<'PY'
import json, math, os, sys
peers, runs, smoke, peers_only = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
seeds = sys.argv[5:]

def load(path):
    # moxing prints its summary indented over many lines; the peers print one line
    try:
        with open(path) as f:
            text = f.read()
        return json.JSONDecoder().raw_decode(text[text.index("{"):])[0]
    except (OSError, ValueError):
        return {}

def num(x):
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None

def moxing(seed):
    summary = load(f"{peers}/moxing-{seed}.json")
    test = load(f"{runs}-{seed}/test_metrics.json")
    f1 = num(test.get("f1_macro"))
    seconds = num(summary.get("train_seconds"))
    unit = num(summary.get("steps")) if smoke else num(summary.get("epochs"))
    return f1, seconds / unit if seconds is not None and unit else None

def torch(seed):
    r = load(f"{peers}/torch-{seed}.json")
    return (num(r.get("test", {}).get("f1_macro")),
            num(r.get("seconds_per_step" if smoke else "seconds_per_epoch")))

def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None

def cell(x, fmt):
    return "–" if x is None else format(x, fmt)

def row(label, mf, tf, ms, ts):
    diff = (mf - tf) * 100 if mf is not None and tf is not None else None
    ratio = ms / ts if ms is not None and ts else None
    return (f"| {label} | {cell(mf, '.4f')} | {cell(tf, '.4f')} | {cell(diff, '+.2f')} | "
            f"{cell(ms, '.3f' if smoke else '.1f')} | {cell(ts, '.3f' if smoke else '.1f')} | "
            f"{cell(ratio, '.2f')} |")

unit = "s/step" if smoke else "s/epoch"
ours = {s: moxing(s) if not peers_only else (None, None) for s in seeds}
theirs = {s: torch(s) for s in seeds}
print(f"| seed | macro-F1 moxing | macro-F1 torch | diff (points) | {unit} moxing | "
      f"{unit} torch | ratio moxing/torch |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for s in seeds:
    print(row(s, ours[s][0], theirs[s][0], ours[s][1], theirs[s][1]))
print(row("mean", mean(o[0] for o in ours.values()), mean(t[0] for t in theirs.values()),
          mean(o[1] for o in ours.values()), mean(t[1] for t in theirs.values())))
print()
print("ratio target: moxing / torch <= 0.8" + ("; smoke run: 20 steps a side" if smoke else ""))
for analyzer in ("word", "char"):
    b = load(f"{peers}/tfidf-{analyzer}.json")
    print(f"tf-idf + logistic regression ({analyzer}, C={b.get('C')}): macro-F1 "
          f"{cell(num(b.get('test', {}).get('f1_macro')), '.4f')}")
PY
