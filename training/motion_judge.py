"""A second emotion judge for generated gesture: a small temporal convolutional network over the joint
positions of the upper body and hands, trained on teacher motion.

The benchmark's first emotion classifier reads `window_features`, the 4 s mean and spread of every pose
feature and of its change, which are also the statistics that the trainer's free-running loss matches to
the teacher's. A model trained on that loss can score well on that classifier without moving the way the
teacher does. This judge sees none of those statistics: it reads where the joints are, frame by frame at
15 fps, and learns its own filters over time (the shape and rhythm of strokes, how the hands move with
the shoulders), so a high score from it is evidence the loss did not simply teach the classifier's inputs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import SMPLX_JOINTS, UPPER_BODY_JOINTS

JUDGE_JOINTS = (*UPPER_BODY_JOINTS, *range(25, 55))  # the upper body and both hands' fingers
STRIDE = 2  # 30 fps motion read at 15 fps
WINDOW = 120  # frames at 30 fps: the 4 s windows of the statistics classifier
PELVIS = SMPLX_JOINTS.index("pelvis")
JUDGE_STEPS = 1500  # the temporal emotion judges' training steps
JUDGE_HOP = 15  # frames between their overlapping training windows


def judge_windows(pos: np.ndarray, hop: int = WINDOW) -> np.ndarray:
    """(T, 55, 3) joint positions -> (n, 3 * joints, WINDOW // STRIDE) windows of the judge's joints
    relative to the pelvis, one every `hop` frames. Training windows overlap (a small hop), so that the
    judge cannot key on where in a window a stroke falls."""
    joints = (pos[:, list(JUDGE_JOINTS)] - pos[:, PELVIS : PELVIS + 1]).reshape(len(pos), -1)
    starts = range(0, len(pos) - WINDOW + 1, hop)
    if not starts:
        return np.zeros((0, joints.shape[1], WINDOW // STRIDE), np.float32)
    return np.stack([joints[s : s + WINDOW : STRIDE].T for s in starts]).astype(np.float32)


class MotionJudge(nn.Module):
    """Three strided convolutions (receptive field about 1.3 s), then the mean and maximum over time.
    `centred` takes each window's mean pose off first, so that the judge reads motion alone: the model adds
    a fitted posture per emotion (`GestureNetwork.posture`), which tells emotions apart by itself."""

    mean: torch.Tensor  # buffers: the per-channel normalisation, fitted on the training windows
    std: torch.Tensor

    def __init__(self, channels: int, n_classes: int, width: int = 64, centred: bool = False) -> None:
        super().__init__()
        self.centred = centred
        self.register_buffer("mean", torch.zeros(channels, 1))
        self.register_buffer("std", torch.ones(channels, 1))
        self.convs = nn.Sequential(
            nn.Conv1d(channels, width, 5, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2), nn.ReLU(),
        )  # fmt: skip
        self.out = nn.Linear(2 * width, n_classes)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        h = self.convs((self.centre(windows) - self.mean) / self.std)
        return self.out(torch.cat([h.mean(-1), h.amax(-1)], dim=1))

    def centre(self, windows: torch.Tensor) -> torch.Tensor:
        return windows - windows.mean(-1, keepdim=True) if self.centred else windows


def train_judge(windows: np.ndarray, labels: np.ndarray, n_classes: int, steps: int,
                centred: bool = False) -> MotionJudge:  # fmt: skip
    """Adam for a fixed number of steps from a fixed seed, so one data set gives one judge anywhere."""
    torch.manual_seed(0)
    x, y = torch.from_numpy(windows).float(), torch.from_numpy(labels).long()
    model = MotionJudge(x.shape[1], n_classes, centred=centred)
    seen = model.centre(x)
    model.mean.copy_(seen.mean(dim=(0, 2))[:, None])
    model.std.copy_(seen.std(dim=(0, 2))[:, None] + 1e-3)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,))
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def judge(model: MotionJudge, pos: np.ndarray) -> np.ndarray:
    """The class the judge reads in each 4 s window of (T, 55, 3) joint positions."""
    windows = judge_windows(pos)
    if not len(windows):
        return np.zeros(0, np.int64)
    return model(torch.from_numpy(windows).float()).argmax(1).numpy()


JUDGES = {"posture and motion": False, "motion alone": True}  # name -> whether the judge is `centred`


def train_emotion_judges(motion: list[tuple[np.ndarray, int]], steps: int = JUDGE_STEPS,
                         kinds: tuple[str, ...] = tuple(JUDGES)) -> dict[str, MotionJudge]:  # fmt: skip
    """The emotion judges named in `kinds` (all by default: one reading posture and motion, one reading
    motion alone) on (joint positions (T, 55, 3), emotion index) of teacher motion."""
    windows = [(judge_windows(pos, hop=JUDGE_HOP), e) for pos, e in motion]
    x = np.concatenate([w for w, _ in windows])
    y = np.concatenate([[e] * len(w) for w, e in windows])
    return {name: train_judge(x, y, len(EMOTIONS), steps, centred=JUDGES[name]) for name in kinds}
