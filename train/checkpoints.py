"""Around the one checkpoint.pt: a kept history (--keep-every), warm starts (--init-from), option checks."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def kept_name(step: int) -> str:
    return f"checkpoint-{step:07d}.pt"


def check(a) -> str | None:
    """Why the checkpoint options are unusable, or None; called before any work."""
    if a.keep_every < 0:
        return f"--keep-every {a.keep_every} must be >= 0 (0: keep only checkpoint.pt)"
    if a.keep_every and a.keep_every % max(a.ckpt_every, 1):
        return (f"--keep-every {a.keep_every} must be a multiple of --ckpt-every {a.ckpt_every} "
                f"(only saved steps can be kept)")
    if a.init_from and not Path(a.init_from).is_file():
        return f"--init-from {a.init_from}: no such file"
    return None


def keep(run: Path, step: int, every: int) -> Path | None:
    """After checkpoint.pt was written at `step`: keep a copy when step is a multiple of `every`."""
    if not every or step % every:
        return None
    src, dst = Path(run) / "checkpoint.pt", Path(run) / kept_name(step)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)  # checkpoint.pt is later replaced by rename, so this inode stays as it is
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)
    return dst


def init_from(encoder, path) -> str:
    """Load encoder weights only from a spixwalk checkpoint / export or a torchvision resnet18 state dict.

    Strict: every encoder weight must be there with its shape (torchvision's `fc` is ignored). Raises
    train.weights.WeightsError with one line naming the file and the first mismatch. Returns the kind.
    """
    from train.weights import encoder_from_state, read, resnet_state

    state, _, kind = resnet_state(read(path), path)
    drop = not any(k.startswith("layer4.") for k in encoder.state_dict())
    loaded = encoder_from_state(state, drop_layer4=drop, path=path)  # only its weights are copied
    encoder.load_state_dict(loaded.state_dict(), strict=True)
    return kind
