"""The optimisation loop both trainers share: AdamW with cosine decay over a budget in steps."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm


def run_stage(name: str, params: list, loss_fn: Callable[[], Tensor], steps: int, lr: float) -> list[float]:
    """AdamW with cosine decay over `steps` steps, gradients clipped to norm 1; returns the losses. A
    budget in steps, not minutes, so that the same seed gives the same weights however busy the machine."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    losses: list[float] = []
    with tqdm(total=steps, desc=name, unit="step") as bar:
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            loss = loss_fn()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            losses.append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    return losses


def train_only(model: torch.nn.Module, part: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Freezes `model` but for `part` (one of its modules); returns `part`'s parameters, to optimise."""
    for p in model.parameters():
        p.requires_grad_(False)
    for p in part.parameters():
        p.requires_grad_(True)
    return list(part.parameters())


def run_recorded_stage(name: str, params: list, loss_fn: Callable[[], Tensor], steps: int, lr: float,
                       **facts: object) -> dict:  # fmt: skip
    """`run_stage`, and a record of it for a checkpoint's metadata: `facts`, the budget, the mean loss of
    the first 20 and of the last 100 steps, and the minutes it took."""
    began = time.time()
    losses = run_stage(name, params, loss_fn, steps, lr)
    return {**facts, "steps": steps, "final_loss": float(np.mean(losses[-100:])),
            "first_loss": float(np.mean(losses[:20])), "wall_minutes": (time.time() - began) / 60}  # fmt: skip
