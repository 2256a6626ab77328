"""Run logs: one JSON line per --log-every steps (log.jsonl, means over those steps), the same as CSV,
a loss-curve PNG and the summary."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path


class RunLog:
    def __init__(self, run: Path, enabled: bool = True, keep_until: int = 0):
        self.run, self.enabled = Path(run), enabled
        self.path = self.run / "log.jsonl"
        self.rows, self._csv_keys = [], []  # log.csv's columns
        if enabled and self.path.exists():
            # resuming: rows written after the checkpoint we resume from are replayed, drop them
            old = [json.loads(l) for l in self.path.read_text().splitlines() if l.strip()]
            self.rows = [r for r in old if r["step"] <= keep_until]
            self._rewrite()
        self.first_new = len(self.rows)  # rows of this process's run start here

    def _rewrite(self):
        self.run.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        self.flush_files()

    def write(self, row: dict) -> None:
        """Append a row to log.jsonl and log.csv (the CSV is rewritten only when a new column appears)."""
        if not self.enabled:
            return
        self.rows.append(row)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if set(row) <= set(self._csv_keys):
            with open(self.run / "log.csv", "a", newline="") as f:
                csv.DictWriter(f, self._csv_keys).writerow(row)
        else:
            self.flush_files()

    def flush_files(self) -> None:
        if not self.enabled or not self.rows:
            return
        self._csv_keys = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(self.run / "log.csv", "w", newline="") as f:
            w = csv.DictWriter(f, self._csv_keys)
            w.writeheader()
            w.writerows(self.rows)

    def summary(self, cfg: dict, seconds: float, steps_done: int, clips_per_step: int) -> dict:
        losses = [r["loss"] for r in self.rows if "loss" in r]
        accs = [r[max(k for k in r if k.startswith("acc_"))] for r in self.rows if "loss" in r]
        tail = max(1, min(10, len(losses) // 5))  # mean of the last few steps: single steps are noisy
        mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
        waits = [r["data_wait"] for r in self.rows[self.first_new:] if "data_wait" in r]
        return {
            "nodes": cfg["nodes"], "label_configs": cfg["label_configs"], "steps": cfg["steps"],
            "steps_this_run": steps_done, "batch": cfg["batch"], "world": cfg["world"],
            "train_seconds": round(seconds, 2),
            "clips_per_s": round(steps_done * clips_per_step / seconds, 4) if seconds else None,
            "data_wait_fraction": round(mean(waits), 4) if waits else None,
            "first_loss": losses[0] if losses else None, "final_loss": mean(losses[-tail:]) if losses else None,
            "final_acc": mean(accs[-tail:]) if accs else None, "final_loss_window": tail,
            "dropped_clips": sum(r.get("dropped_clips", 0) for r in self.rows),
            "skipped_steps": sum(r.get("skipped_steps", 0) for r in self.rows),
            "checkpoint": str(self.run / "checkpoint.pt"), "device": cfg["device"],
        }

    def plot(self) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [r for r in self.rows if "loss" in r]
        if not rows:
            return
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
        steps = [r["step"] for r in rows]
        mk = {"marker": "o", "ms": 4} if len(rows) < 3 else {}  # one row is a point, not an invisible line
        ax[0].plot(steps, [r["loss"] for r in rows], label="loss", **mk)
        for k in sorted(k for k in rows[-1] if k.startswith("xent_")):
            ax[0].plot(steps, [r.get(k, math.nan) for r in rows], lw=0.8, label=f"cycle {k[5:]}", **mk)
        for k in sorted(k for k in rows[-1] if k.startswith("acc_")):
            ax[1].plot(steps, [r.get(k, math.nan) for r in rows], lw=0.8, label=f"cycle {k[4:]}", **mk)
        ax[0].set(xlabel="step", title="walk loss")
        ax[1].set(xlabel="step", title="return accuracy", ylim=(0, 1))
        for x in ax:
            x.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(self.run / "loss.png", dpi=100)
        plt.close(fig)
