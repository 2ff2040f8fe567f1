"""GGUF both ways between moxing and llama.cpp, on real models.

1. moxing -> llama.cpp: each GGUF file given with --moxing-written (written by `moxing quantize
   ... --out X.gguf`) is loaded by llama.cpp (llama-cpp-python), which scores --file; its mean
   next-token loss is printed next to `moxing perplexity X.gguf FILE`'s.
2. llama.cpp -> moxing: llama.cpp's own converter (convert_hf_to_gguf.py, from the
   llama-cpp-python source package's vendored llama.cpp) converts a transformers folder
   (--hf-folder, e.g. SmolLM2 saved by transformers) to GGUF at --outtype; `moxing perplexity`
   and llama.cpp score the result, next to transformers' loss on the folder.
Both sides tokenize with their own tokenizer (the token counts are printed; they must agree).
Needs llama-cpp-python, torch, transformers, numpy, and sentencepiece for the converter.
Usage: python3 bench/peer/gguf_interop.py --file TEXT [--moxing-written A.gguf ...]
       [--hf-folder DIR --outtype q8_0] [--moxing build/release/moxing]
"""
import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile

import numpy as np


def llama_cpp_loss(path, text):
    import llama_cpp
    # windows of the model's own context (n_ctx=0), as `moxing perplexity` scores
    llm = llama_cpp.Llama(model_path=path, n_ctx=0, n_batch=8192, n_ubatch=8192, logits_all=True,
                          n_threads=os.cpu_count(), verbose=False)
    ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    ctx = min(llm.n_ctx(), llm._model.n_ctx_train())  # llama.cpp rounds n_ctx up to 256
    nll, count = 0.0, 0
    for begin in range(0, len(ids), ctx):
        x = ids[begin:begin + ctx]
        if len(x) < 2:
            break
        llm.reset()
        llm.eval(x)
        logits = np.asarray(llm.scores[:len(x) - 1], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        nll -= logp[np.arange(len(x) - 1), x[1:]].sum()
        count += len(x) - 1
    return {"tokens": count, "loss": nll / count}


def moxing_loss(moxing, path, text_file):
    out = subprocess.run([moxing, "perplexity", path, text_file, "--json"], check=True,
                         capture_output=True, text=True).stdout
    j = json.loads(out)
    return {"tokens": j["tokens"], "loss": j["loss"]}


def transformers_loss(folder, text):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gguf_transformers import window_loss
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    count, loss = window_loss(model, tok(text, return_tensors="pt").input_ids)
    return {"tokens": count, "loss": loss}


def converter(tmp):
    """llama.cpp's convert_hf_to_gguf.py and its gguf-py, from the llama-cpp-python sdist."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "--quiet", "llama-cpp-python", "-d", tmp], check=True)
    sdist = glob.glob(os.path.join(tmp, "llama_cpp_python-*.tar.gz"))[0]
    with tarfile.open(sdist) as t:
        t.extractall(tmp, filter="data")
    root = glob.glob(os.path.join(tmp, "llama_cpp_python-*", "vendor", "llama.cpp"))[0]
    return os.path.join(root, "convert_hf_to_gguf.py"), os.path.join(root, "gguf-py")


def show(label, r):
    print(f"  {label:<34} tokens {r['tokens']:>6}  loss {r['loss']:.6f}  "
          f"perplexity {math.exp(r['loss']):.3f}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--file", required=True)
    p.add_argument("--moxing-written", nargs="*", default=[])
    p.add_argument("--hf-folder")
    p.add_argument("--outtype", default="q8_0")
    p.add_argument("--moxing", default="build/release/moxing")
    a = p.parse_args()
    text = open(a.file, encoding="utf-8").read()
    for path in a.moxing_written:
        print(f"{path} (written by moxing)")
        show("moxing perplexity", moxing_loss(a.moxing, path, a.file))
        show("llama.cpp", llama_cpp_loss(path, text))
    if a.hf_folder:
        with tempfile.TemporaryDirectory() as tmp:
            script, gguf_py = converter(tmp)
            out = os.path.join(tmp, f"converted-{a.outtype}.gguf")
            env = dict(os.environ, PYTHONPATH=gguf_py)
            subprocess.run([sys.executable, script, a.hf_folder, "--outfile", out, "--outtype",
                            a.outtype], check=True, env=env, capture_output=True)
            print(f"{a.hf_folder} converted by llama.cpp's convert_hf_to_gguf.py ({a.outtype})")
            show("transformers (the folder, f32)", transformers_loss(a.hf_folder, text))
            show("moxing perplexity (converted)", moxing_loss(a.moxing, out, a.file))
            show("llama.cpp (converted)", llama_cpp_loss(out, text))


if __name__ == "__main__":
    main()
