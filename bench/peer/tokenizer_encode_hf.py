"""HF `tokenizers` peer of `moxing bench-tokenizer`: encode throughput (MB/s, one thread) of
Tokenizer.from_file on a text file, whole (encode) and line by line (encode_batch), with a
cold cache (first pass of a fresh tokenizer) and a warm one (best of three later passes).
With --column NAME the texts are that column of a CSV/TSV table: "lines" its cells, "whole"
the cells joined by newlines (as moxing bench-tokenizer --column).
Prints a table or, with --json, one JSON object with the same keys as moxing's.
Usage: python3 bench/peer/tokenizer_encode_hf.py TOKENIZER_JSON FILE [--column NAME] [--json]
"""
import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import csv  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from tokenizers import Tokenizer  # noqa: E402


def measure(path, encode_all):
    tok = Tokenizer.from_file(path)
    tok.no_truncation()  # a model's tokenizer.json may cut to its window; moxing's encode never
    tok.no_padding()
    t0 = time.perf_counter()
    tokens = encode_all(tok)
    cold = time.perf_counter() - t0
    warm = 1e30
    for _ in range(3):
        t0 = time.perf_counter()
        encode_all(tok)
        warm = min(warm, time.perf_counter() - t0)
    return cold, warm, tokens


def main():
    args = [a for a in sys.argv[1:] if a != "--json"]
    as_json = "--json" in sys.argv[1:]
    column = None
    if "--column" in args:
        i = args.index("--column")
        column = args[i + 1]
        del args[i:i + 2]
    path, file = args
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    if column is not None:
        with open(file, newline="", encoding="utf-8") as f:
            delimiter = "\t" if file.endswith(".tsv") else ","
            lines = [row[column] for row in csv.DictReader(f, delimiter=delimiter)]
        text = "".join(line + "\n" for line in lines)
    else:
        with open(file, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        lines = []
        start = 0
        while start < len(text):
            nl = text.find("\n", start)
            end = len(text) if nl < 0 else nl + 1
            lines.append(text[start:end])
            start = end
    nbytes = len(text.encode("utf-8"))
    mb = nbytes / 1e6
    wc, ww, wt = measure(path, lambda t: len(t.encode(text, add_special_tokens=False).ids))
    lc, lw, lt = measure(path, lambda t: sum(
        len(e.ids) for e in t.encode_batch(lines, add_special_tokens=False)))
    out = {"peer": "hf-tokenizers", "file": file, "bytes": nbytes, "lines": len(lines),
           "tokens_whole": wt, "tokens_lines": lt,
           "whole_cold_mbps": mb / wc, "whole_warm_mbps": mb / ww,
           "lines_cold_mbps": mb / lc, "lines_warm_mbps": mb / lw}
    if as_json:
        print(json.dumps(out))
    else:
        print(f"{file}: {mb:.2f} MB, {len(lines)} lines, {wt} tokens")
        print(f"encode whole text   cold {mb / wc:8.2f} MB/s   warm {mb / ww:8.2f} MB/s")
        print(f"encode line by line cold {mb / lc:8.2f} MB/s   warm {mb / lw:8.2f} MB/s")


if __name__ == "__main__":
    main()
