"""Pose features to the body stream's wire layout, in torch, so the conversion runs inside the exported
step (batched, on the step's device) instead of in NumPy after a copy to the host.

The same mapping as runtime/body_pose.body_frames: each generated joint's 6D rotation (Zhou et al. 2019)
through Gram-Schmidt to a matrix, then to a unit quaternion (x, y, z, w) with w >= 0 by Shepperd's method
(the largest of four candidate denominators); the joints the model does not generate are the identity;
then the root translation. Written with gather and where only, which ONNX and TensorRT take.
"""

from __future__ import annotations

import torch
from torch import Tensor

from emostream.runtime.body_pose import GESTURE_JOINTS, N_JOINTS

_EPS = 1e-12
# Where each SMPL-X joint's quaternion sits in cat([generated joints' quaternions, one identity]).
_ORDER = [GESTURE_JOINTS.index(j) if j in GESTURE_JOINTS else len(GESTURE_JOINTS) for j in range(N_JOINTS)]


def _normalize(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp(min=_EPS)


def sixd_to_quaternion(sixd: Tensor) -> Tensor:
    """(..., 6) first two matrix columns -> (..., 4) unit quaternions (x, y, z, w), w >= 0."""
    b1 = _normalize(sixd[..., 0:3])
    a2 = sixd[..., 3:6]
    b2 = _normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1)
    b3 = torch.cross(b1, b2, dim=-1)
    # Matrix m[row][col] with columns b1, b2, b3.
    m00, m10, m20 = b1.unbind(-1)
    m01, m11, m21 = b2.unbind(-1)
    m02, m12, m22 = b3.unbind(-1)
    candidates = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    options = torch.stack(
        [
            torch.stack([m21 - m12, m02 - m20, m10 - m01, candidates[..., 0]], dim=-1),
            torch.stack([candidates[..., 1], m01 + m10, m02 + m20, m21 - m12], dim=-1),
            torch.stack([m01 + m10, candidates[..., 2], m12 + m21, m02 - m20], dim=-1),
            torch.stack([m02 + m20, m12 + m21, candidates[..., 3], m10 - m01], dim=-1),
        ],
        dim=-2,
    )  # (..., 4, 4): each row the quaternion times 4 * one of its components
    best = candidates.argmax(dim=-1, keepdim=True)[..., None].expand(*candidates.shape[:-1], 1, 4)
    q = _normalize(torch.gather(options, -2, best)[..., 0, :])
    return torch.where(q[..., 3:4] < 0, -q, q)


def pose_to_wire(pose: Tensor) -> Tensor:
    """(..., N_POSE_FEATURES) pose features -> (..., 223): 55 joints' quaternions, then root translation."""
    n_generated = len(GESTURE_JOINTS)
    lead = pose.shape[:-1]
    quats = sixd_to_quaternion(pose[..., : 6 * n_generated].reshape(*lead, n_generated, 6))
    identity = pose.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(*lead, 1, 4)
    order = torch.tensor(_ORDER, device=pose.device)
    joints = torch.cat([quats, identity], dim=-2).index_select(-2, order)  # (..., 55, 4)
    return torch.cat([joints.reshape(*lead, 4 * N_JOINTS), pose[..., -3:]], dim=-1)
