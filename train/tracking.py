"""Optional live curves: --tensorboard (RUN/tensorboard/) and --wandb; off unless asked, nothing sent by default."""
from __future__ import annotations

import importlib.util
import netrc
import os
from pathlib import Path

# the scalars of a log.jsonl row that are curves (per-cycle xent_k / acc_k are matched by prefix)
SCALARS = ("loss", "clips_per_s", "data_wait", "lr")
PREFIXES = ("xent_", "acc_")


def _wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check(a) -> str | None:
    """Why the tracking options are unusable, or None; called before any work."""
    if a.tensorboard and importlib.util.find_spec("tensorboard") is None:
        return "--tensorboard needs the tensorboard package: pip install 'spixwalk[tensorboard]'"
    if a.wandb and importlib.util.find_spec("wandb") is None:
        return "--wandb needs the wandb package: pip install 'spixwalk[wandb]'"
    if a.wandb and not _wandb_key():
        return "--wandb: no W&B key (set WANDB_API_KEY, run `wandb login`, or WANDB_MODE=offline)"
    return None


def curves(row: dict) -> dict:
    return {k: float(v) for k, v in row.items() if k in SCALARS or k.startswith(PREFIXES)}


class Tracker:
    """Sends each logged step's curves to the enabled trackers (rank 0 only)."""

    def __init__(self, a, run: Path, cfg: dict, enabled: bool = True, start: int = 0):
        self.tb = self.wandb = None
        if not enabled:
            return
        if a.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            # resuming at `start`: hide the steps an interrupted run logged after its checkpoint, as log.jsonl does
            self.tb = SummaryWriter(log_dir=str(Path(run) / "tensorboard"), purge_step=start or None)
        if a.wandb:
            import wandb
            self.wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "spixwalk"), name=Path(run).name,
                                    dir=str(run), config=cfg)

    def log(self, row: dict) -> None:
        values = curves(row)
        if not values:
            return
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"train/{k}", v, row["step"])
        if self.wandb is not None:
            self.wandb.log({f"train/{k}": v for k, v in values.items()}, step=row["step"])

    def flush(self) -> None:
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
