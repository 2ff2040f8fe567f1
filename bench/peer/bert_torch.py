"""transformers / sentence-transformers peer of `moxing bench-bert`, timed the same way on the
same threads.

  forward: transformers' BertModel with random weights (BERT-base by default: 12 layers, width
           768, 12 heads, 3072) on batch x seq random tokens, no padding, eval mode, no_grad;
           the median of --repeats forwards after one warm-up.
  embed:   SentenceTransformer(--model, device="cpu").encode of a CSV column (--file,
           --column) with batch_size --batch; sentences per second from the median of
           --repeats passes after one warm-up.

Prints one JSON object with the same keys as moxing's.
Usage: python3 bench/peer/bert_torch.py [--task forward|embed] [--threads 2] ...
"""
import argparse
import csv
import json
import statistics
import time

import torch


def timed(repeats, f):
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--task", choices=["forward", "embed"], default="forward")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--intermediate", type=int, default=3072)
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--batch", type=int, default=0, help="0: 8 for forward, 32 for embed")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--model", default="")
    p.add_argument("--file", default="")
    p.add_argument("--column", default="text")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--json", action="store_true", help="accepted for symmetry; always JSON")
    a = p.parse_args()
    batch = a.batch or (8 if a.task == "forward" else 32)

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = {"peer": "torch " + torch.__version__, "task": a.task, "threads": a.threads}
    with torch.inference_mode():
        if a.task == "forward":
            import transformers
            from transformers import BertConfig, BertModel

            cfg = BertConfig(num_hidden_layers=a.layers, num_attention_heads=a.heads,
                             hidden_size=a.width, intermediate_size=a.intermediate,
                             vocab_size=a.vocab)
            model = BertModel(cfg).eval()
            ids = torch.randint(0, a.vocab, (batch, a.seq))
            state = {}

            def forward():
                h = model(input_ids=ids).last_hidden_state
                state["abs_sum"] = h.double().abs().sum().item()

            times = timed(a.repeats, forward)
            out.update({"peer": out["peer"] + ", transformers " + transformers.__version__,
                        "attn_implementation": model.config._attn_implementation,
                        "layers": a.layers, "width": a.width, "heads": a.heads,
                        "intermediate": a.intermediate, "batch": batch, "seq": a.seq,
                        "seconds": statistics.median(times), "seconds_all": times,
                        "abs_sum": state["abs_sum"]})
        else:
            import sentence_transformers
            from sentence_transformers import SentenceTransformer

            with open(a.file, newline="", encoding="utf-8") as f:
                texts = [row[a.column] for row in csv.DictReader(f) if row[a.column]]
            if a.limit:
                texts = texts[:a.limit]
            model = SentenceTransformer(a.model, device="cpu")
            state = {}

            def embed():
                v = model.encode(texts, batch_size=batch, convert_to_tensor=True)
                state["abs_sum"] = v.double().abs().sum().item()

            times = timed(a.repeats, embed)
            secs = statistics.median(times)
            out.update({"peer": out["peer"] + ", sentence-transformers "
                        + sentence_transformers.__version__,
                        "sentences": len(texts), "batch": batch, "seconds": secs,
                        "seconds_all": times, "sentences_per_s": len(texts) / secs,
                        "abs_sum": state["abs_sum"]})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
