"""The training-speed peer of `dotnet fsi build.fsx bench`: the pruning paper's 4-conv CNN
(Thermo.Trainer/Models/FourConvNet.cs, layer for layer) trained with Debian's PyTorch
(python3-torch) on the same MNIST IDX files, with Adam, the same batch size and thread count.

Usage: python3 pytorch_fourconv.py IDX_DIR --threads 2 --batch-size 128 --epochs 2 [--limit N]
Prints one JSON line: {"images_per_second": median over epochs after the first, ...}.
"""
import argparse, gzip, json, os, struct, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def find(directory, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    raise SystemExit(f"{directory}: {name} is missing")


class FourConvNet(nn.Module):
    def __init__(self, widths=(12, 24, 48, 48), dropout=0.1, classes=10, size=28):
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], 5)
        self.conv2 = nn.Conv2d(widths[0], widths[1], 3)
        self.conv3 = nn.Conv2d(widths[1], widths[2], 3)
        self.conv4 = nn.Conv2d(widths[2], widths[3], 3)
        self.dropout = dropout
        grid = ((size - 4 - 2) // 2 - 4) // 2
        self.fc = nn.Linear(widths[3] * grid * grid, classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(F.dropout(x, self.dropout, self.training), 2)
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        x = F.max_pool2d(F.dropout(x, self.dropout, self.training), 2)
        return self.fc(x.flatten(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("idx_dir")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images = read_idx(find(args.idx_dir, "train-images-idx3-ubyte")).float().div_(255).unsqueeze(1)
    labels = read_idx(find(args.idx_dir, "train-labels-idx1-ubyte")).long()
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    model = FourConvNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    n = images.shape[0]
    speeds, losses = [], []
    for _ in range(args.epochs):
        model.train()
        permutation = torch.randperm(n)
        start = time.perf_counter()
        for b in range(0, n, args.batch_size):
            index = permutation[b: b + args.batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images[index]), labels[index])
            loss.backward()
            optimizer.step()
        speeds.append(n / (time.perf_counter() - start))
        losses.append(loss.item())
    timed = sorted(speeds[1:] or speeds)
    print(json.dumps({"images_per_second": timed[len(timed) // 2], "epochs": speeds, "last_loss": losses[-1],
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "mkldnn": torch.backends.mkldnn.is_available(), "images": n}))


if __name__ == "__main__":
    main()
