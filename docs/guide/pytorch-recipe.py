"""Save what Thermo needs from a plain PyTorch training loop: one state dict per epoch (epoch 0 = the
initialisation, before any step) and one metrics row per checkpoint (lr: the learning rate the
epoch trained with; for epoch 0, the first epoch's).

    python3 pytorch-recipe.py --out checkpoints        # tiny model, synthetic data, 3 epochs, seconds
"""
import argparse
import csv
from pathlib import Path

import torch
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--out", default="checkpoints")
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

torch.manual_seed(0)
x, y = torch.randn(512, 20), torch.randint(0, 4, (512,))  # stand-in data: use your own loaders
x_val, y_val = torch.randn(128, 20), torch.randint(0, 4, (128,))
model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
loss_fn = nn.CrossEntropyLoss()


def val_loss():
    with torch.no_grad():
        return loss_fn(model(x_val), y_val).item()


with open(out / "metrics.csv", "w", newline="") as f:
    metrics = csv.writer(f)
    metrics.writerow(["epoch", "train_loss", "val_loss", "lr"])

    # Epoch 0: the initial weights, before the first step.
    torch.save(model.state_dict(), out / "epoch_0.pt")
    metrics.writerow([0, "", val_loss(), opt.param_groups[0]["lr"]])

    for epoch in range(1, args.epochs + 1):
        lr, total = opt.param_groups[0]["lr"], 0.0
        for i in range(0, len(x), 32):
            opt.zero_grad()
            loss = loss_fn(model(x[i:i + 32]), y[i:i + 32])
            loss.backward()
            opt.step()
            total += loss.item()
        sched.step()

        # After each epoch: the weights, and the epoch's losses and learning rate.
        torch.save(model.state_dict(), out / f"epoch_{epoch}.pt")
        metrics.writerow([epoch, total / (len(x) // 32), val_loss(), lr])
