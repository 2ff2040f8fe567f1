"""PyTorch / transformers peer of `moxing bench-gpt`: the same GPT-2 model (random weights,
GPT2LMHeadModel from transformers, dropout 0), timed on the same threads.

  train: one AdamW step (forward, loss, backward, optimizer) on batch B x T random tokens,
         the mean of --steps timed steps after one warm-up step.
  generate: greedy decoding of --new-tokens tokens after a --prompt-tokens prompt with the KV
         cache (model.generate, use_cache=True, no early stop), tokens per second.

  save: GPT2LMHeadModel with random weights saved by save_pretrained into --model DIR.
  load: GPT2LMHeadModel.from_pretrained(--model DIR), then the first forward of a
         --prompt-tokens prompt (what `moxing bench-gpt --task load` times).

Prints one JSON object with the timings and the process's peak resident memory.
Usage: python3 bench/peer/gpt_torch.py [--task train|generate] [--threads 2] [--layers 12] ...
"""
import argparse
import json
import resource
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--task", choices=["train", "generate", "save", "load"], default="train")
    p.add_argument("--model", default="", help="the model folder of --task save and load")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--positions", type=int, default=1024)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=128)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.task == "load":
        rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
        t = time.perf_counter()
        model = GPT2LMHeadModel.from_pretrained(a.model)
        out = {"peer": "transformers", "task": "load", "seconds": time.perf_counter() - t,
               "parameters": sum(p.numel() for p in model.parameters()),
               "rss_after_load_mb": rss()}
        x = torch.tensor([[7919 * i % model.config.vocab_size for i in range(a.prompt_tokens)]])
        t = time.perf_counter()
        with torch.no_grad():
            out["logits_sum"] = model(input_ids=x).logits.double().sum().item()
        out["first_forward_seconds"] = time.perf_counter() - t
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(json.dumps(out))
        return
    cfg = GPT2Config(n_layer=a.layers, n_head=a.heads, n_embd=a.width, vocab_size=a.vocab,
                     n_positions=a.positions, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg)
    if a.task == "save":
        model.save_pretrained(a.model, safe_serialization=True)
        print(json.dumps({"peer": "transformers", "task": "save", "model": a.model}))
        return
    out = {"peer": "torch " + torch.__version__, "task": a.task, "threads": a.threads,
           "layers": a.layers, "width": a.width, "heads": a.heads, "vocab": a.vocab}
    if a.task == "train":
        model.train()
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=3e-4)
        x = torch.randint(0, a.vocab, (a.batch, a.seq))

        def step():
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()

        step()
        times = []
        for _ in range(a.steps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        out.update({"batch": a.batch, "seq": a.seq, "step_seconds": sum(times) / len(times),
                    "step_seconds_min": min(times)})
    else:
        model.eval()
        prompt = torch.randint(0, a.vocab, (1, a.prompt_tokens))
        kw = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False,
                  use_cache=True, pad_token_id=0)
        with torch.no_grad():
            model.generate(prompt, **dict(kw, max_new_tokens=4, min_new_tokens=4))
            t = time.perf_counter()
            ids = model.generate(prompt, **kw)
            secs = time.perf_counter() - t
        new = ids.shape[1] - a.prompt_tokens
        out.update({"prompt_tokens": a.prompt_tokens, "new_tokens": new, "seconds": secs,
                    "tokens_per_s": new / secs})
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
