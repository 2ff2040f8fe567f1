"""Writes a model folder of GPT-2-small's size (transformers' GPT2Config defaults: 12 layers,
width 768, context 1024, 124M parameters) with random weights (seed 0) and GPT-2's real BPE
vocabulary, for speed comparisons: only the bytes and the arithmetic matter, so random weights
measure the same as trained ones. The vocabulary comes from the openai-whisper source package
(whisper/assets/gpt2/vocab.json, merges.txt), fetched with pip; no GPT-2 weights are downloaded.
Usage: python3 bench/peer/make_gpt2_small.py DIR   (python with torch and transformers)
"""
import os
import subprocess
import sys
import tarfile
import tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def fetch_vocab(out):
    with tempfile.TemporaryDirectory() as tmp:
        constraint = os.path.join(tmp, "constraint.txt")
        with open(constraint, "w") as f:
            f.write("setuptools<70\n")  # the 2023 sdist does not build its metadata with newer
        env = dict(os.environ, PIP_CONSTRAINT=constraint)
        subprocess.run(["python3", "-m", "pip", "download", "--no-deps", "--quiet",
                        "openai-whisper==20230124", "-d", tmp], check=True, env=env)
        with tarfile.open(os.path.join(tmp, "openai-whisper-20230124.tar.gz")) as t:
            for name in ("vocab.json", "merges.txt"):
                member = t.getmember(f"openai-whisper-20230124/whisper/assets/gpt2/{name}")
                with open(os.path.join(out, name), "wb") as f:
                    f.write(t.extractfile(member).read())


def main():
    out = sys.argv[1]
    if os.path.exists(os.path.join(out, "model.safetensors")):
        print(f"{out}: there already")
        return
    os.makedirs(out, exist_ok=True)
    fetch_vocab(out)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(out, safe_serialization=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
