"""The checkpoint series of `Thermo.Bench --only checkpoints`: a GPT-2-small-shaped state dict
(124M float32 parameters at the default sizes) walked by small random steps, written as other
trainers write their checkpoints.

Usage: python3 checkpoint_series.py OUT [--checkpoints 10] [--bf16 10] [--sharded 5]
                                        [--vocab 50257] [--ctx 1024] [--d 768] [--layers 12]
                                        [--shard-mb 200] [--seed 0]

Checkpoint k (k = 0, 1, ...) is checkpoint k-1 plus torch.randn(...) * 1e-3 for every tensor
(seeded), starting from a GPT-2-like initialisation (N(0, 0.02) weights, zero biases, unit layer-norm
weights). Keys as Hugging Face's GPT2LMHeadModel names them (`transformer.h.0.attn.c_attn.weight`,
Conv1D weights stored in x out). Written:
  OUT/float32/step_{k}.pt                    torch.save(state_dict), k < --checkpoints
  OUT/bfloat16/step_{k}.pt                   the same values .to(torch.bfloat16), k < --bf16
  OUT/sharded/checkpoint-{k}/model-0000i-of-0000j.safetensors + model.safetensors.index.json
                                             float32, shards of at most --shard-mb MB, k < --sharded
The safetensors files are written by hand (8-byte little-endian header length, JSON header with
dtype/shape/data_offsets, raw little-endian data), so the `safetensors` package is not needed.
Prints one JSON line: parameters, bytes of one float32 checkpoint, seconds.
"""
import argparse
import json
import os
import struct
import time
from collections import OrderedDict

import torch


def gpt2_state(vocab, ctx, d, layers, generator):
    def normal(*shape):
        return torch.randn(*shape, generator=generator) * 0.02

    sd = OrderedDict()
    sd["transformer.wte.weight"] = normal(vocab, d)
    sd["transformer.wpe.weight"] = normal(ctx, d)
    for i in range(layers):
        p = f"transformer.h.{i}."
        sd[p + "ln_1.weight"] = torch.ones(d)
        sd[p + "ln_1.bias"] = torch.zeros(d)
        sd[p + "attn.c_attn.weight"] = normal(d, 3 * d)
        sd[p + "attn.c_attn.bias"] = torch.zeros(3 * d)
        sd[p + "attn.c_proj.weight"] = normal(d, d)
        sd[p + "attn.c_proj.bias"] = torch.zeros(d)
        sd[p + "ln_2.weight"] = torch.ones(d)
        sd[p + "ln_2.bias"] = torch.zeros(d)
        sd[p + "mlp.c_fc.weight"] = normal(d, 4 * d)
        sd[p + "mlp.c_fc.bias"] = torch.zeros(4 * d)
        sd[p + "mlp.c_proj.weight"] = normal(4 * d, d)
        sd[p + "mlp.c_proj.bias"] = torch.zeros(d)
    sd["transformer.ln_f.weight"] = torch.ones(d)
    sd["transformer.ln_f.bias"] = torch.zeros(d)
    return sd


def write_safetensors(path, tensors):
    header, offset = {}, 0
    for name, t in tensors:
        n = t.numel() * t.element_size()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for _, t in tensors:
            f.write(t.contiguous().numpy().tobytes())  # little-endian on the machines this runs on


def write_sharded(folder, sd, shard_bytes):
    os.makedirs(folder, exist_ok=True)
    shards, current, size = [], [], 0
    for name, t in sd.items():
        n = t.numel() * t.element_size()
        if current and size + n > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append((name, t))
        size += n
    shards.append(current)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(os.path.join(folder, file), shard)
        for name, t in shard:
            weight_map[name] = file
            total += t.numel() * t.element_size()
    with open(os.path.join(folder, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("out")
    a.add_argument("--checkpoints", type=int, default=10)
    a.add_argument("--bf16", type=int, default=10)
    a.add_argument("--sharded", type=int, default=5)
    a.add_argument("--vocab", type=int, default=50257)
    a.add_argument("--ctx", type=int, default=1024)
    a.add_argument("--d", type=int, default=768)
    a.add_argument("--layers", type=int, default=12)
    a.add_argument("--shard-mb", type=float, default=200)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--threads", type=int, default=1)
    args = a.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    g = torch.Generator().manual_seed(args.seed)
    sd = gpt2_state(args.vocab, args.ctx, args.d, args.layers, g)
    count = max(args.checkpoints, args.bf16, args.sharded)
    for sub in ("float32", "bfloat16", "sharded"):
        os.makedirs(os.path.join(args.out, sub), exist_ok=True)
    for k in range(count):
        if k > 0:
            for t in sd.values():
                t.add_(torch.randn(t.shape, generator=g), alpha=1e-3)
        if k < args.checkpoints:
            torch.save(sd, os.path.join(args.out, "float32", f"step_{k}.pt"))
        if k < args.bf16:
            torch.save(OrderedDict((n, t.to(torch.bfloat16)) for n, t in sd.items()), os.path.join(args.out, "bfloat16", f"step_{k}.pt"))
        if k < args.sharded:
            write_sharded(os.path.join(args.out, "sharded", f"checkpoint-{k}"), sd, int(args.shard_mb * 1e6))
    parameters = sum(t.numel() for t in sd.values())
    print(json.dumps({"parameters": parameters, "checkpoint_bytes": parameters * 4, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
