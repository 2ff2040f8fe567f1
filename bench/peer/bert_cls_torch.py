"""PyTorch / transformers peer of moxing's BERT text classification: fine-tunes a Hugging Face
BERT folder for single-label sequence classification in a plain loop that does what
transformers' Trainer does by default, timed per epoch on the same threads, then scored on the
test split. It is not a Trainer run (no callbacks, no checkpoints, no evaluation between epochs).

  model: AutoModelForSequenceClassification.from_pretrained(--model, num_labels, id2label,
         label2id); torch.manual_seed(seed) before it, so a pooler or head missing from the
         folder is initialized the same way on every run with that seed.
  data:  --data DIR holds train.csv, validation.csv, test.csv (label and text columns); label
         ids are the sorted unique training labels. AutoTokenizer truncates to --max-length and
         pads nothing; each batch is padded to its longest row (DataCollatorWithPadding).
  loop:  the training rows shuffled each epoch by a torch.Generator seeded with seed + epoch;
         dropout on; mean cross-entropy; gradients clipped to norm 1.0 (Trainer's max_grad_norm);
         AdamW (0.9, 0.999, eps 1e-8), no weight decay on biases and LayerNorm weights (Trainer's
         grouping); linear warmup then linear decay to 0 over all steps
         (get_linear_schedule_with_warmup); --max-steps caps the steps for smoke tests and is
         then the schedule's length, as in Trainer.
  time:  wall time of each epoch's training steps only (no tokenizing, no evaluation).
  test:  eval mode, no grad, batches of 64: accuracy, macro precision / recall / F1 (sklearn,
         zero_division=0), ROC-AUC of class 1's softmax probability (one-vs-rest macro for more
         than two labels), confusion matrix.

Prints one JSON line and writes it to --out.
Usage: python3 bench/peer/bert_cls_torch.py --model data/text/all-MiniLM-L6-v2
         --data data/text/rotten-tomatoes --seed 1 --threads 2 --out runs/torch-rt-1.json
"""
import argparse
import csv
import json
import math
import os
import time

import numpy as np
import torch
import transformers
from sklearn.metrics import (accuracy_score, confusion_matrix, precision_recall_fscore_support,
                             roc_auc_score)
from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                          DataCollatorWithPadding, get_linear_schedule_with_warmup)


def read_split(path, text_column, label_column):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r[text_column] for r in rows], [r[label_column] for r in rows]


def encode(tokenizer, texts, labels, label2id, max_length):
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return [{**{k: enc[k][i] for k in enc.keys()}, "labels": label2id[labels[i]]}
            for i in range(len(texts))]


def param_groups(model, weight_decay):
    # Trainer decays every weight but biases and the parameters of LayerNorm modules
    in_layer_norm = {f"{m_name}.{p_name}" if m_name else p_name
                     for m_name, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)
                     for p_name, _ in m.named_parameters(recurse=False)}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = name in in_layer_norm or "bias" in name.lower() or "layernorm" in name.lower()
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate(model, rows, collate, batch_size, num_labels):
    model.eval()
    probs, golds = [], []
    for i in range(0, len(rows), batch_size):
        batch = collate(rows[i:i + batch_size])
        labels = batch.pop("labels")
        logits = model(**batch).logits
        probs.append(torch.softmax(logits.float(), dim=-1).numpy())
        golds.append(labels.numpy())
    prob = np.concatenate(probs)
    gold = np.concatenate(golds)
    pred = prob.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        gold, pred, labels=list(range(num_labels)), average="macro", zero_division=0)
    try:
        if num_labels == 2:
            auc = roc_auc_score(gold, prob[:, 1])
        else:
            auc = roc_auc_score(gold, prob, multi_class="ovr", average="macro",
                                labels=list(range(num_labels)))
    except ValueError:  # a test split holding one class only
        auc = float("nan")
    return {"accuracy": float(accuracy_score(gold, pred)), "f1_macro": float(f1),
            "precision_macro": float(precision), "recall_macro": float(recall),
            "roc_auc": float(auc),
            "confusion_matrix": confusion_matrix(gold, pred,
                                                 labels=list(range(num_labels))).tolist()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, help="a Hugging Face BERT folder")
    p.add_argument("--data", required=True, help="folder with train.csv, validation.csv, test.csv")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke tests)")
    p.add_argument("--out", default="", help="also write the JSON line to this file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    train_x, train_y = read_split(os.path.join(a.data, "train.csv"), a.text_column, a.label_column)
    test_x, test_y = read_split(os.path.join(a.data, "test.csv"), a.text_column, a.label_column)
    labels = sorted(set(train_y))
    label2id = {l: i for i, l in enumerate(labels)}
    unknown = sorted(set(test_y) - set(labels))
    if unknown:
        raise SystemExit(f"test labels not in the training split: {unknown}")

    tokenizer = AutoTokenizer.from_pretrained(a.model)
    train_rows = encode(tokenizer, train_x, train_y, label2id, a.max_length)
    test_rows = encode(tokenizer, test_x, test_y, label2id, a.max_length)
    collate = DataCollatorWithPadding(tokenizer, padding="longest", return_tensors="pt")

    torch.manual_seed(a.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        a.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)

    steps_per_epoch = math.ceil(len(train_rows) / a.batch_size)
    total_steps = steps_per_epoch * a.epochs
    epochs = a.epochs
    if a.max_steps > 0:
        total_steps = a.max_steps
        epochs = math.ceil(a.max_steps / steps_per_epoch)
    optimizer = torch.optim.AdamW(param_groups(model, a.weight_decay), lr=a.lr,
                                  betas=(0.9, 0.999), eps=1e-8)
    scheduler = get_linear_schedule_with_warmup(optimizer, a.warmup_steps, total_steps)

    step, epoch_seconds, losses = 0, [], []
    for epoch in range(epochs):
        order = torch.randperm(len(train_rows),
                               generator=torch.Generator().manual_seed(a.seed + epoch)).tolist()
        model.train()
        t0 = time.perf_counter()
        for i in range(0, len(order), a.batch_size):
            if step == total_steps:
                break
            batch = collate([train_rows[j] for j in order[i:i + a.batch_size]])
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
        epoch_seconds.append(time.perf_counter() - t0)

    test = evaluate(model, test_rows, collate, a.eval_batch_size, len(labels))
    train_seconds = sum(epoch_seconds)
    result = {
        "peer": "torch", "seed": a.seed, "epochs": epochs, "steps": step,
        "epoch_seconds": [round(s, 3) for s in epoch_seconds],
        "seconds_per_epoch": train_seconds / len(epoch_seconds),
        "seconds_per_step": train_seconds / max(step, 1),
        "train_loss_last": float(np.mean(losses[-50:])) if losses else None,
        "labels": labels,
        "test": test,
        "threads": a.threads, "torch": torch.__version__, "transformers": transformers.__version__,
    }
    line = json.dumps(result)
    print(line)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
