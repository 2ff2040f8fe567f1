"""The scikit-learn baseline of moxing's text classification: tf-idf features and a logistic
regression, C chosen on the validation split, scored on the test split. No neural network, no
pretrained weights: the floor a fine-tuned encoder has to clear.

  word: TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True,
        lowercase, sklearn's default token pattern). For space-separated languages: the
        default pattern reads a run of Chinese characters as one token.
  char: TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True,
        lowercase): character 1- to 3-grams inside whitespace-separated chunks; the choice
        for Chinese, where a chunk is a whole clause.
  auto: char when more than a fifth of the training characters are CJK ideographs, else word.
  model: LogisticRegression(max_iter=1000, lbfgs, random_state=seed), C from [0.25, 1, 4, 16]
        by validation macro-F1 (the first best), fitted on the training split only.
  test: accuracy, macro precision / recall / F1 (zero_division=0), ROC-AUC of class 1's
        probability (one-vs-rest macro for more than two labels); label ids are the sorted
        unique training labels.

Prints one JSON line. Usage:
  python3 bench/peer/tfidf_baseline.py --data data/text/rotten-tomatoes --analyzer word
"""
import argparse
import csv
import json
import os
import time

import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support, roc_auc_score)

C_GRID = [0.25, 1.0, 4.0, 16.0]


def read_split(path, text_column, label_column):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r[text_column] for r in rows], [r[label_column] for r in rows]


def cjk_fraction(texts):
    chars = "".join(texts)
    cjk = sum(1 for c in chars if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    return cjk / max(1, len(chars))


def vectorizer(analyzer):
    if analyzer == "word":
        return TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True)


def scores(gold, prob, num_labels):
    pred = prob.argmax(axis=1)
    labels = list(range(num_labels))
    precision, recall, f1, _ = precision_recall_fscore_support(
        gold, pred, labels=labels, average="macro", zero_division=0)
    if num_labels == 2:
        auc = roc_auc_score(gold, prob[:, 1])
    else:
        auc = roc_auc_score(gold, prob, multi_class="ovr", average="macro", labels=labels)
    return {"accuracy": float(accuracy_score(gold, pred)), "f1_macro": float(f1),
            "precision_macro": float(precision), "recall_macro": float(recall),
            "roc_auc": float(auc),
            "confusion_matrix": confusion_matrix(gold, pred, labels=labels).tolist()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="folder with train.csv, validation.csv, test.csv")
    p.add_argument("--analyzer", choices=["word", "char", "auto"], default="auto")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    split = {s: read_split(os.path.join(a.data, f"{s}.csv"), a.text_column, a.label_column)
             for s in ("train", "validation", "test")}
    labels = sorted(set(split["train"][1]))
    label2id = {l: i for i, l in enumerate(labels)}
    analyzer = a.analyzer
    if analyzer == "auto":
        analyzer = "char" if cjk_fraction(split["train"][0]) > 0.2 else "word"

    t0 = time.perf_counter()
    vec = vectorizer(analyzer)
    x = {"train": vec.fit_transform(split["train"][0])}
    for s in ("validation", "test"):
        x[s] = vec.transform(split[s][0])
    y = {s: np.array([label2id[l] for l in split[s][1]]) for s in split}

    best, validation_f1 = None, {}
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=1000, random_state=a.seed)
        clf.fit(x["train"], y["train"])
        f1 = f1_score(y["validation"], clf.predict(x["validation"]), average="macro",
                      zero_division=0)
        validation_f1[str(c)] = round(float(f1), 4)
        if best is None or f1 > best[0]:
            best = (f1, c, clf)
    _, c, clf = best
    test = scores(y["test"], clf.predict_proba(x["test"]), len(labels))
    print(json.dumps({
        "peer": "tfidf-lr", "analyzer": analyzer, "C": c, "seed": a.seed,
        "features": len(vec.vocabulary_), "validation_f1_macro": validation_f1,
        "labels": labels, "test": test, "seconds": round(time.perf_counter() - t0, 2),
        "sklearn": sklearn.__version__,
    }))


if __name__ == "__main__":
    main()
