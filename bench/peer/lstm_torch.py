"""PyTorch peer of `moxing bench-lstm`: the same stacked LSTM (nn.LSTM, f32, CPU), input
(T, B, input) and loss sum(output * g), timed on the same threads.

Prints one JSON object: train_seconds (forward + backward) and forward_seconds (no grad), each
the median of --repeats runs after one warm-up run.
Usage: python3 bench/peer/lstm_torch.py [--threads 2] [--layers 2] [--hidden 512] ...
"""
import argparse
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
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--input", type=int, default=512)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(a.input, a.hidden, num_layers=a.layers)
    x = torch.randn(a.steps, a.batch, a.input, requires_grad=True)
    g = torch.randn(a.steps, a.batch, a.hidden)

    def step():
        lstm.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = lstm(x)
        (out * g).sum().backward()

    def forward():
        with torch.no_grad():
            lstm(x)

    print(json.dumps({"peer": "torch " + torch.__version__, "threads": a.threads,
                      "train_seconds": timed(a.repeats, step),
                      "forward_seconds": timed(a.repeats, forward)}))


if __name__ == "__main__":
    main()
