"""PyTorch peer of the translate task: the same encoder-decoder (torch.nn.Transformer, post-LN,
ReLU, Marian's sinusoidal positions, sqrt(d_model) embedding scale, one embedding table shared by
source, target and the output layer, a final logits bias), the same data, tokenizer (the
tokenizer.json a moxing run saved, read with Hugging Face tokenizers), sizes and
hyper-parameters, read from the same TOML config: AdamW with decay on matrices only (moxing's
decay_groups), linear warmup and decay, gradient clipping, label-smoothed cross-entropy, batches of
[data] batch_size pairs in a seeded order per epoch, the vocabulary projection on the real
target positions only (not the padding), as moxing's task does. Weights start as nn.Transformer starts them
(Xavier uniform); the embedding as Marian's (N(0, init_std^2), the pad row zero, no gradient).

At the end it translates the test split (greedy, then beam search with [data] num_beams and
length_penalty as transformers scores it) and prints one JSON object: the median seconds per
training step, the training seconds, the final validation loss, and test BLEU / chrF /
exact match (sacreBLEU) of both decodes.
Usage: python3 bench/peer/translate_torch.py CONFIG.toml --tokenizer RUN/final
           [--data DIR] [--threads 2] [--epochs N | --steps N] [--out translations.txt]
           [--no-test]
"""
import argparse
import csv
import json
import math
import os
import statistics
import time
import tomllib

import sacrebleu
import torch
import torch.nn as nn
import torch.nn.functional as F
from tokenizers import Tokenizer


def read_pairs(path, src_col, tgt_col):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r[src_col] for r in rows], [r[tgt_col] for r in rows]


def sinusoidal(n_pos, dim):
    """Marian's table: sin in the first ceil(dim/2) columns, cos in the rest."""
    half = (dim + 1) // 2
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    j = torch.where(j < half, j, j - half)
    angle = pos / torch.pow(10000.0, 2 * j / dim)
    cols = torch.arange(dim)[None, :]
    return torch.where(cols < half, torch.sin(angle), torch.cos(angle)).float()


class Seq2Seq(nn.Module):
    def __init__(self, m, vocab, pad):
        super().__init__()
        d = m["d_model"]
        self.scale = math.sqrt(d) if m.get("scale_embedding", False) else 1.0
        self.embed = nn.Embedding(vocab, d, padding_idx=pad)
        nn.init.normal_(self.embed.weight, 0.0, m.get("init_std", 0.02))
        with torch.no_grad():
            self.embed.weight[pad].zero_()
        self.register_buffer("pos", sinusoidal(m["max_position_embeddings"], d), persistent=False)
        self.drop = nn.Dropout(m["dropout"])
        self.transformer = nn.Transformer(
            d_model=d, nhead=m["encoder_attention_heads"], num_encoder_layers=m["encoder_layers"],
            num_decoder_layers=m["decoder_layers"], dim_feedforward=m["encoder_ffn_dim"],
            dropout=m["dropout"], activation=m.get("activation_function", "relu"),
            batch_first=True, norm_first=False)
        # Marian has no final LayerNorm after either stack
        self.transformer.encoder.norm = None
        self.transformer.decoder.norm = None
        self.bias = nn.Parameter(torch.zeros(vocab), requires_grad=False)

    def embed_at(self, ids, past=0):
        x = self.embed(ids) * self.scale + self.pos[past:past + ids.size(1)]
        return self.drop(x)

    def encode(self, src, src_pad):
        return self.transformer.encoder(self.embed_at(src), src_key_padding_mask=src_pad)

    def states(self, tgt, memory, src_pad):
        T = tgt.size(1)
        causal = nn.Transformer.generate_square_subsequent_mask(T)
        return self.transformer.decoder(self.embed_at(tgt), memory, tgt_mask=causal,
                                        tgt_is_causal=True, memory_key_padding_mask=src_pad)

    def head(self, h):
        return F.linear(h, self.embed.weight) + self.bias

    def decode(self, tgt, memory, src_pad):
        return self.head(self.states(tgt, memory, src_pad))


def encode(tok, text, eos, max_len):
    ids = tok.encode(text).ids[:max_len - 1]
    return ids + [eos]


def batch(pairs, idx, pad, start):
    S = max(len(pairs[0][i]) for i in idx)
    T = max(len(pairs[1][i]) for i in idx)
    src = torch.full((len(idx), S), pad)
    dec = torch.full((len(idx), T), pad)
    lab = torch.full((len(idx), T), -100)
    for r, i in enumerate(idx):
        s, t = pairs[0][i], pairs[1][i]
        src[r, :len(s)] = torch.tensor(s)
        dec[r, 0] = start
        dec[r, 1:len(t)] = torch.tensor(t[:-1])
        lab[r, :len(t)] = torch.tensor(t)
    return src, src == pad, dec, lab


@torch.no_grad()
def greedy(model, src_ids, pad, start, eos, max_new):
    out = []
    for s in src_ids:
        src = torch.tensor([s])
        mask = src == pad
        mem = model.encode(src, mask)
        ys = [start]
        for _ in range(max_new):
            nxt = int(model.decode(torch.tensor([ys]), mem, mask)[0, -1].argmax())
            if nxt == eos:
                break
            ys.append(nxt)
        out.append(ys[1:])
    return out


@torch.no_grad()
def beam_search(model, src_ids, pad, start, eos, max_new, beams, lp):
    """transformers' rules: 2 * beams candidates, finished score = sum log p / len^lp,
    stop when no running beam can beat the worst finished one (early_stopping False)."""
    out = []
    for s in src_ids:
        src = torch.tensor([s])
        mask = src == pad
        mem = model.encode(src, mask)
        running = [([start], 0.0)]
        finished = []
        for step in range(max_new):
            seqs = torch.tensor([r[0] for r in running])
            logp = F.log_softmax(model.decode(seqs, mem.expand(len(running), -1, -1),
                                              mask.expand(len(running), -1))[:, -1], -1)
            scores = (logp + torch.tensor([r[1] for r in running])[:, None]).reshape(-1)
            top = torch.topk(scores, min(2 * beams, scores.numel()))
            V = logp.size(1)
            gen = step + 1
            nxt = []
            for rank, (sc, c) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
                b, tokn = divmod(c, V)
                seq = running[b][0] + [tokn]
                if tokn == eos or gen >= max_new:
                    if rank < beams:
                        finished.append((sc / gen ** lp, seq[1:-1] if tokn == eos else seq[1:]))
                elif len(nxt) < beams:
                    nxt.append((seq, sc))
            finished = sorted(finished, key=lambda f: -f[0])[:beams]
            running = nxt
            if not running:
                break
            if len(finished) == beams and running[0][1] / gen ** lp <= finished[-1][0]:
                break
        out.append(finished[0][1] if finished else running[0][0][1:])
    return out


def scores(hyps, refs):
    return {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
            "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
            "exact_match": sum(h.strip() == r.strip() for h, r in zip(hyps, refs)) / len(refs)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("--tokenizer", required=True, help="folder with the run's tokenizer.json")
    p.add_argument("--data", help="replaces [data] path")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--out", help="write the beam translations of the test split here")
    p.add_argument("--no-test", action="store_true", help="skip the test decodes (timing only)")
    a = p.parse_args()
    with open(a.config, "rb") as f:
        cfg = tomllib.load(f)
    m, d, o, sch, tr = cfg["model"], cfg["data"], cfg["optim"], cfg.get("schedule", {}), cfg["train"]
    torch.set_num_threads(a.threads)
    torch.manual_seed(tr.get("seed", 0))
    tok = Tokenizer.from_file(os.path.join(a.tokenizer, "tokenizer.json"))
    eos, pad = tok.token_to_id("</s>"), tok.token_to_id("<pad>")
    start = pad
    max_len = d.get("max_length") or m["max_position_embeddings"]
    path = a.data or d["path"]
    splits = {}
    for name in ("train", "validation", "test"):
        src, tgt = read_pairs(os.path.join(path, name + ".csv"), d["source_column"],
                              d["target_column"])
        splits[name] = ([encode(tok, s, eos, max_len) for s in src],
                        [encode(tok, t, eos, max_len) for t in tgt], src, tgt)
    model = Seq2Seq(m, tok.get_vocab_size(), pad)
    decay = [p_ for n, p_ in model.named_parameters() if p_.requires_grad and p_.dim() >= 2]
    no_decay = [p_ for n, p_ in model.named_parameters() if p_.requires_grad and p_.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.get("weight_decay", 0.0)},
                             {"params": no_decay, "weight_decay": 0.0}], lr=o["lr"],
                            betas=(o.get("beta1", 0.9), o.get("beta2", 0.999)),
                            eps=o.get("eps", 1e-8))
    B = d["batch_size"]
    n_train = len(splits["train"][0])
    per_epoch = (n_train + B - 1) // B
    steps = a.steps or tr.get("steps") or per_epoch * (a.epochs or tr.get("epochs", 10))
    warm = sch.get("warmup_steps", 0)

    def lr_at(step):  # transformers' linear schedule
        if step < warm:
            return (step + 1) / max(1, warm) if warm else 1.0
        return max(0.0, (steps - step) / max(1, steps - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    g = torch.Generator().manual_seed(tr.get("seed", 0))
    times = []
    step = 0
    t0 = time.perf_counter()
    model.train()
    while step < steps:
        order = torch.randperm(n_train, generator=g).tolist()
        for first in range(0, n_train, B):
            if step >= steps:
                break
            t = time.perf_counter()
            src, src_pad, dec, lab = batch(splits["train"], order[first:first + B], pad, start)
            h = model.states(dec, model.encode(src, src_pad), src_pad)
            keep = lab != -100  # the vocabulary projection on real target positions only
            loss = F.cross_entropy(model.head(h[keep]), lab[keep],
                                   label_smoothing=d.get("label_smoothing", 0.0))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tr.get("clip_grad_norm", 0) > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tr["clip_grad_norm"])
            opt.step()
            sched.step()
            times.append(time.perf_counter() - t)
            step += 1
            if step % tr.get("log_every", 50) == 0:
                print(f"step {step}/{steps} loss {loss.item():.4f}", flush=True)
    train_seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        val = splits["validation"]
        total, count = 0.0, 0
        for first in range(0, len(val[0]), 100):
            idx = list(range(first, min(len(val[0]), first + 100)))
            src, src_pad, dec, lab = batch(val, idx, pad, start)
            logits = model.decode(dec, model.encode(src, src_pad), src_pad)
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), lab.reshape(-1),
                                     ignore_index=-100, reduction="sum").item()
            count += int((lab != -100).sum())
    result = {"peer": "torch " + torch.__version__, "threads": a.threads, "steps": steps,
              "step_seconds_median": statistics.median(times),
              "step_seconds_mean": statistics.mean(times),
              "train_seconds": train_seconds, "val_loss": total / count}
    if a.no_test:
        print(json.dumps(result, indent=2))
        return
    test = splits["test"]
    max_new = d.get("max_new_tokens") or max_len
    g_hyps = [tok.decode(h) for h in greedy(model, test[0], pad, start, eos, max_new)]
    b_hyps = [tok.decode(h) for h in beam_search(model, test[0], pad, start, eos, max_new,
                                                 d.get("num_beams", 4),
                                                 d.get("length_penalty", 1.0))]
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write("\n".join(b_hyps) + "\n")
    result["test_greedy"] = scores(g_hyps, test[3])
    result["test_beam"] = scores(b_hyps, test[3])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
