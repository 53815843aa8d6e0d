"""The plain-PyTorch baseline of `Thermo.Bench --only checkpoints`: the per-layer and per-unit
temperatures Thermo's in-place analysis computes, from the same checkpoint files, written the way a
PyTorch user would write it.

Usage: python3 checkpoint_temperatures.py CHECKPOINT... [--threads 2] [--report LAYER,...]
  CHECKPOINT: a torch.save file (step_K.pt) or a Hugging Face checkpoint-K/ directory holding
  sharded safetensors (model.safetensors.index.json), in time order; K is the time (step).

What it does, for every floating tensor whose key ends in `.weight` (Thermo's default: weights only,
units along dim 0): torch.load each checkpoint in turn (safetensors: the file read into memory and
its tensors viewed with torch.frombuffer, as the `safetensors` package does), keep the first and the
previous one, and accumulate per unit u (the slice W[u, ...]) Σ_i Σ_k (w_k(i) − w_k(i−1))² / Δt_i²,
the difference taken in float32 and squared and summed in float64; at the end the drift
(w(n) − w(0)) / (t_n − t_0) per unit. Low-precision tensors are converted to float32 first, as
Thermo does. Kinetic convention (unit mass, k_B = 1): T = ½ · mean over the group's weights and the
window's intervals of v² (an evenly spaced series), T_drift = ½ · mean of the drift velocity².
Prints one JSON line: seconds (everything after `import torch`, files included), torch version,
threads, and for the layers in --report their T, T_drift and the first units' T.
"""
import argparse
import json
import os
import re
import struct
import time

import torch

ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def read_safetensors(path, out):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = bytearray(os.path.getsize(path) - 8 - n)
        f.readinto(data)
    header.pop("__metadata__", None)
    for name, info in header.items():
        b, e = info["data_offsets"]
        dtype = ST_DTYPES[info["dtype"]]
        out[name] = torch.frombuffer(data, dtype=dtype, count=(e - b) // torch.tensor([], dtype=dtype).element_size(),
                                     offset=b).reshape(info["shape"])


def load(path):
    if os.path.isdir(path):
        with open(os.path.join(path, "model.safetensors.index.json"), encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        sd = {}
        for shard in sorted(set(weight_map.values())):
            read_safetensors(os.path.join(path, shard), sd)
        return sd
    return torch.load(path, map_location="cpu")


def weights(sd):
    return {k: v.float() for k, v in sd.items() if k.endswith(".weight") and v.is_floating_point()}


def main():
    a = argparse.ArgumentParser()
    a.add_argument("checkpoints", nargs="+")
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--report", default="")
    a.add_argument("--units", type=int, default=5)
    args = a.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    times = [int(re.findall(r"\d+", os.path.basename(os.path.normpath(p)))[-1]) for p in args.checkpoints]
    first = weights(load(args.checkpoints[0]))
    previous = first
    sums = {k: torch.zeros(v.shape[0], dtype=torch.float64) for k, v in first.items()}
    for i in range(1, len(args.checkpoints)):
        current = weights(load(args.checkpoints[i]))
        dt = times[i] - times[i - 1]
        for k, w in current.items():
            d = (w - previous[k]).double().reshape(w.shape[0], -1)
            sums[k] += d.square_().sum(1) / (dt * dt)
        previous = current
    n = len(args.checkpoints) - 1
    span = times[-1] - times[0]
    result = {}
    for k, w in previous.items():
        per_unit = w.numel() // w.shape[0]
        drift = ((w - first[k]).double().reshape(w.shape[0], -1) / span).square_().sum(1)
        result[k[: -len(".weight")]] = (sums[k], drift, per_unit)
    seconds = time.perf_counter() - start
    report = {}
    for layer in [x for x in args.report.split(",") if x]:
        s, drift, per_unit = result[layer]
        count = s.numel() * per_unit
        report[layer] = {"T": 0.5 * s.sum().item() / (n * count), "T_drift": 0.5 * drift.sum().item() / count,
                         "units": (0.5 * s[: args.units] / (n * per_unit)).tolist()}
    print(json.dumps({"seconds": seconds, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "checkpoints": len(args.checkpoints), "layers": report}))


if __name__ == "__main__":
    main()
