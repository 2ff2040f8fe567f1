"""The transformers side of running a GGUF model (transformers dequantizes it to f32): the mean
next-token loss of a text file in windows of the model's context, as `moxing perplexity` scores
it, and the greedy tokens of a prompt, as `moxing generate --greedy` picks them. Prints JSON.
Usage: python3 bench/peer/gguf_transformers.py MODEL.gguf --file TEXT [--prompt P] [--tokens N]
       [--chat]   (--chat: P is a user message rendered with the chat template, as
                   `moxing generate --chat P` does)
"""
import argparse
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def window_loss(model, ids):
    """(tokens scored, mean next-token loss) of ids (1, N) in windows of the model's context,
    as `moxing perplexity` scores them."""
    window = model.config.max_position_embeddings
    nll, count = 0.0, 0
    with torch.no_grad():
        for begin in range(0, ids.size(1), window):
            x = ids[:, begin:begin + window]
            if x.size(1) < 2:
                break
            logits = model(x).logits[:, :-1].double()
            nll += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="sum").item()
            count += x.size(1) - 1
    return count, nll / count


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--file", required=True)
    p.add_argument("--prompt", default="The capital of France is")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--chat", action="store_true",
                   help="render --prompt as a user message with the model's chat template")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    folder, name = os.path.split(os.path.abspath(a.model))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    ids = tok(open(a.file, encoding="utf-8").read(), return_tensors="pt").input_ids
    count, mean_loss = window_loss(model, ids)
    with torch.no_grad():
        if a.chat:
            prompt = tok.apply_chat_template([{"role": "user", "content": a.prompt}],
                                             add_generation_prompt=True, return_tensors="pt")
            if not torch.is_tensor(prompt):
                prompt = prompt["input_ids"]
        else:
            prompt = tok(a.prompt, return_tensors="pt").input_ids
        if a.chat:
            # greedy by full forwards (no cache): the argmax of the model's own logits each step
            out = prompt
            for _ in range(a.tokens):
                nxt = model(out).logits[0, -1].argmax().view(1, 1)
                out = torch.cat([out, nxt], dim=1)
                if int(nxt) == tok.eos_token_id:
                    break
        else:
            out = model.generate(prompt, max_new_tokens=a.tokens, do_sample=False,
                                 eos_token_id=None, pad_token_id=tok.pad_token_id or 0)
    new = out[0, prompt.size(1):]
    print(json.dumps({"tokens": count, "loss": mean_loss, "greedy_ids": new.tolist(),
                      "greedy_text": tok.decode(new)}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
