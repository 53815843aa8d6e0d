#!/usr/bin/env bash
# The graph paper's temperature sweeps at a reduced scale: one base run of gcn or gat with the
# paper's settings (Adam, no weight regularisation, no dropout, batch 32) at a constant learning
# rate of 1e-3, then its sweeps over the learning rate (B = 32) and the batch size (η = 1e-3),
# each point continued from the base run's final model, and the base run's per-row temperatures
# (the paper's Fig. 4).
#
#   examples/graph-paper.sh MODEL SEED BASE_EPOCHS POINT_EPOCHS [OUT]
#
# e.g. examples/graph-paper.sh gcn 1 100 10 artifacts/graph-paper
# A stopped script can be started again: a finished base run or sweep point is reused, an
# unfinished one resumed.
set -euo pipefail
model=$1 seed=$2 base_epochs=$3 point_epochs=$4 out=${5:-artifacts/graph-paper}
thermo=${THERMO:-thermo}
run="$out/$model-s$seed"

$thermo train --model "$model" --graph slic --dataset mnist-10k --batch-size 32 --dropout 0 \
  --weight-decay 0 --lr 1e-3 --epochs "$base_epochs" --threads 1 --seed "$seed" \
  --out "$run" --resumable
# The base run's equilibrium: its last fifth, per unit (a GCN or linear layer's unit is a row W[o,:]).
$thermo analyze "$run" --window "last:$((base_epochs / 5))" --groups filter
$thermo sweep --from "$run" --lr 7e-4,1e-3,1.5e-3,2e-3,3e-3 --batch-size 8,16,32,64,128 \
  --epochs "$point_epochs" --window "last:$((point_epochs * 4 / 5))" --threads 1
