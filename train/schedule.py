"""The learning-rate schedule: linear warm-up, then CRW's step drop or a cosine over the run (or its
--budget); and the record a resume keeps when it changes the run's length."""
from __future__ import annotations

import math


def lr_factor(a, steps: int, budget_spent=lambda s: 0.0):
    """Linear warm-up, then CRW's single step decay at --lr-drop-at of the run, or (--lr-schedule cosine) a
    half cosine from --lr to 0 over the --budget (budget_spent(s): clock seconds by step s, a BudgetSpent) or,
    without a budget, over the steps."""
    drop_step = drop_step_of(a, steps)

    def f(s: int) -> float:
        warm = min(1.0, (s + 1) / a.warmup) if a.warmup else 1.0
        if a.lr_schedule == "cosine":
            done = budget_spent(s) / a.budget if a.budget else s / steps
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))
        return warm * (a.lr_gamma if drop_step is not None and s >= drop_step else 1.0)
    return f


class BudgetSpent:
    """Clock seconds spent by step s, for a --budget's cosine: the last log row's figure (the ranks' mean, so
    every rank steps with the same lr), extrapolated past it at the seconds per step between the last two rows.
    The clock is read only at rows (the device clock syncs to be read), yet the lr moves every step."""

    def __init__(self):
        self.seconds, self.step, self.rate = 0.0, 0, 0.0

    def row(self, seconds: float, step: int) -> None:
        """The clock read at a log row (or a resumed checkpoint) after `step` steps."""
        if step > self.step:
            self.rate = (seconds - self.seconds) / (step - self.step)
        self.seconds, self.step = seconds, step

    def __call__(self, s: int) -> float:
        return self.seconds + max(0, s - self.step) * self.rate


def steps_plan(old: dict, cfg: dict, at: int, a, rank: int) -> dict:
    """A resume that changes the run's length (--steps, --epochs) continues from the checkpoint under the
    new plan, so the lr drop (at --lr-drop-at of the run) moves: recorded in config.json as steps_history,
    one entry per plan with the step it took over and its drop step, and said once."""
    history = old.get("steps_history") or [{"from_step": 0, "steps": old.get("steps"),
                                             "lr_drop_step": drop_step_of(a, old.get("steps"))}]
    if old.get("steps") in (None, cfg["steps"]):
        return {"steps_history": old["steps_history"]} if old.get("steps_history") else {}
    entry = {"from_step": at, "steps": cfg["steps"], "lr_drop_step": drop_step_of(a, cfg["steps"])}
    if rank == 0 and at < cfg["steps"]:
        print(f"[train] resuming at step {at} a run planned for {old['steps']} steps, now {cfg['steps']}: "
              f"lr drop (x{a.lr_gamma:g}) at step {history[-1]['lr_drop_step']} -> {entry['lr_drop_step']}")
    return {"steps_history": history + [entry]}


def drop_step_of(a, steps) -> int | None:
    return int(a.lr_drop_at * steps) if a.lr_drop_at and steps else None
