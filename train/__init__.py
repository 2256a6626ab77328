"""Lean trainer: contrastive random walk over superpixel (or CRW patch) nodes, read from the Zarr store.

data.py   clips of T stored frames + label maps, identical spatial augmentation, pooling weights, padding
pool.py   eq. 3.5 superpixel pooling: overlap weights by bincount, applied as one batched matmul
model.py  stride-8 ResNet-18 encoder, 128-d head, WalkNet (superpixel / patch / mixed nodes)
walk.py   masked palindrome walk loss (thesis: k=1..T-1 summed; CRW: k=2..T-1 averaged)
loop.py   Trainer, train_step, run_steps, train, main: Adam, bf16 autocast on CUDA, DDP under torchrun
options.py      the trainer's options (presets and --config applied) and their checks before any work
selection.py    the label configurations and clips a run takes from the store
schedule.py     the lr schedule (warm-up, step drop or cosine) and a resumed run's changed plan
distributed.py  process group, each rank's device, the ranks' vote to stop before the same step
signals.py      the stop signals (one list: trainer, loader workers, wrappers) and the trainer's handler
workers.py      DataLoader workers that ignore stop signals and never make anyone wait forever
checkpoints.py  the checkpoint format: write, exact resume, resume keys, fallback; --keep-every, snapshots
digest.py       the sha256 sidecar beside every checkpoint, checked whenever one is read
stats.py        step statistics of a log row (one host sync per row) and the end-of-run summary table
log.py    log.jsonl / log.csv, loss.png, summary.json
weights.py      the one reader of weight files (checkpoints, exports, torchvision) -> a ResNet-18 encoder; --init-from
export.py       `python -m train export`: weights-only torchvision encoder + padding + metadata
runconfig.py    --config RUN/config.json reruns, command-line overrides
tracking.py     optional --tensorboard / --wandb curves
cli.py          `python -m train [export]`: the stage's command line (__main__.py runs it)
"""
