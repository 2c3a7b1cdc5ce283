"""The VMC protocol (Virtual Motion Capture, OSC over UDP) for VSeeFace, Warudo and other VTuber apps, in
both of its sending roles:

- **performer** (default, to a Marionette, port 39539: the app that shows the avatar takes its whole
  motion from us): one OSC bundle per frame (or one datagram per message, `bundled=False`, for receivers
  that cannot read bundles), in the order performers send them:
    /VMC/Ext/Root/Pos "root" px py pz qx qy qz qw
    /VMC/Ext/Bone/Pos  name  px py pz qx qy qz qw   Head, LeftEye, RightEye; the humanoid bones with a body
    /VMC/Ext/Blend/Val name  value                  the 52 ARKit shapes in PascalCase "perfect sync"
                                                    names, then the VRM 0.x presets A, I, U, E, O,
                                                    Blink_L, Blink_R fitted to them
    /VMC/Ext/Blend/Apply
    /VMC/Ext/T time                                 seconds of media time
    /VMC/Ext/OK 1                                   avatar loaded
- **assistant** (to a Performer, port 39540: an app that tracks the body itself, as VSeeFace with its
  VMC receiver set to accept blendshapes, takes only our face): the same Blend/Val messages, Apply and T.

Coordinates: our rigs are right-handed with the character's left at +X; Unity (and so VMC) is
left-handed with the character's right at +X. Mirroring X converts one into the other; a rotation
quaternion (x, y, z, w) becomes (x, -y, -z, w). Bone positions are the local rest offsets (receivers
use the rotations; the root carries the translation).
"""

from __future__ import annotations

import socket

import numpy as np
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from emostream.clients.avatar.vrm import arkit_to_vrm
from emostream.clients.viewer.camera import head_rotation
from emostream.runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS, SMPLX_JOINTS, rest_offsets
from emostream.runtime.rotations import matrix_to_quat

_FACE = {name: i for i, name in enumerate(FACE_CHANNELS)}
BLEND_NAMES = tuple(name[0].upper() + name[1:] for name in ARKIT_BLENDSHAPES)  # eyeBlinkLeft -> EyeBlinkLeft
# VRM 0.x preset names that VMC receivers know, from the VRM 1.0 presets fitted to the ARKit frame
VRM0_NAMES = {"aa": "A", "ih": "I", "ou": "U", "ee": "E", "oh": "O", "blinkLeft": "Blink_L", "blinkRight": "Blink_R"}
PORTS = {"performer": 39539, "assistant": 39540}  # where each role sends: a Marionette, a Performer

FINGERS = (("thumb", "Thumb"), ("index", "Index"), ("middle", "Middle"), ("ring", "Ring"), ("pinky", "Little"))
# SMPL-X joint -> Unity HumanBodyBones name (SMPL-X "foot" is the ball of the foot: Unity's Toes bone).
SMPLX_TO_UNITY = {
    "pelvis": "Hips",
    "left_hip": "LeftUpperLeg",
    "right_hip": "RightUpperLeg",
    "spine1": "Spine",
    "left_knee": "LeftLowerLeg",
    "right_knee": "RightLowerLeg",
    "spine2": "Chest",
    "left_ankle": "LeftFoot",
    "right_ankle": "RightFoot",
    "spine3": "UpperChest",
    "left_foot": "LeftToes",
    "right_foot": "RightToes",
    "neck": "Neck",
    "left_collar": "LeftShoulder",
    "right_collar": "RightShoulder",
    "head": "Head",
    "left_shoulder": "LeftUpperArm",
    "right_shoulder": "RightUpperArm",
    "left_elbow": "LeftLowerArm",
    "right_elbow": "RightLowerArm",
    "left_wrist": "LeftHand",
    "right_wrist": "RightHand",
    "jaw": "Jaw",
    "left_eye_smplhf": "LeftEye",
    "right_eye_smplhf": "RightEye",
} | {
    f"{side}_{finger}{k}": f"{side.capitalize()}{unity}{part}"
    for side in ("left", "right")
    for finger, unity in FINGERS
    for k, part in ((1, "Proximal"), (2, "Intermediate"), (3, "Distal"))
}


def to_unity_quat(q: np.ndarray) -> np.ndarray:
    """(..., 4) xyzw in our right-handed frame -> Unity's left-handed frame (X mirrored)."""
    return q * np.array([1.0, -1.0, -1.0, 1.0], dtype=q.dtype)


def to_unity_position(p: np.ndarray) -> np.ndarray:
    return p * np.array([-1.0, 1.0, 1.0], dtype=p.dtype)


def _message(address: str, *args: str | float | int) -> OscMessage:
    builder = OscMessageBuilder(address=address)
    for a in args:
        builder.add_arg(a)
    return builder.build()


class VmcSender:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None, bundled: bool = True,
                 role: str = "performer") -> None:  # fmt: skip
        if role not in PORTS:
            raise ValueError(f"a VMC sender is a performer or an assistant, not {role!r}")
        self.role = role
        self.address = (host, PORTS[role] if port is None else port)
        self.bundled = bundled
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        offsets = to_unity_position(rest_offsets()).astype(np.float32)
        self.offsets = {SMPLX_TO_UNITY[j]: offsets[i] for i, j in enumerate(SMPLX_JOINTS)}  # by Unity bone
        self.sent = 0
        self.send_errors = 0  # datagrams the OS refused (e.g. nothing listening); the bridge goes on

    def messages(self, face: np.ndarray, media_time_s: float, body: np.ndarray | None = None) -> list[OscMessage]:
        """The messages for one frame. face: (59,) FACE_CHANNELS; body: (55, 4) local xyzw quats or None."""
        blends = [_message("/VMC/Ext/Blend/Val", name, float(value))
                  for name, value in zip(BLEND_NAMES, face[: len(BLEND_NAMES)], strict=True)]  # fmt: skip
        presets = arkit_to_vrm(face)
        blends += [_message("/VMC/Ext/Blend/Val", vrm0, float(presets[vrm1])) for vrm1, vrm0 in VRM0_NAMES.items()]
        time = _message("/VMC/Ext/T", float(media_time_s))
        if self.role == "assistant":
            return [*blends, _message("/VMC/Ext/Blend/Apply"), time]
        out = [_message("/VMC/Ext/Root/Pos", "root", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)]
        bones: dict[str, np.ndarray] = {}
        if body is not None:
            for i, joint in enumerate(SMPLX_JOINTS):
                bones[SMPLX_TO_UNITY[joint]] = to_unity_quat(body[i])
        head = matrix_to_quat(head_rotation(face[_FACE["headYaw"]], face[_FACE["headPitch"]], face[_FACE["headRoll"]]))
        bones["Head"] = to_unity_quat(head)
        for side in ("left", "right"):
            eye = head_rotation(face[_FACE[f"{side}EyeYaw"]], face[_FACE[f"{side}EyePitch"]], 0.0)
            bones[f"{side.capitalize()}Eye"] = to_unity_quat(matrix_to_quat(eye))
        for name, q in bones.items():
            p = self.offsets[name]
            out.append(_message("/VMC/Ext/Bone/Pos", name, *map(float, p), *map(float, q)))
        out += [*blends, _message("/VMC/Ext/Blend/Apply"), time, _message("/VMC/Ext/OK", 1)]
        return out

    def datagrams(self, face: np.ndarray, media_time_s: float, body: np.ndarray | None = None) -> list[bytes]:
        messages = self.messages(face, media_time_s, body)
        if not self.bundled:
            return [m.dgram for m in messages]
        bundle = OscBundleBuilder(IMMEDIATELY)
        for m in messages:
            bundle.add_content(m)
        return [bundle.build().dgram]

    def send(self, face: np.ndarray, media_time_s: float, body: np.ndarray | None = None) -> None:
        for datagram in self.datagrams(face, media_time_s, body):
            try:
                self.socket.sendto(datagram, self.address)
                self.sent += 1
            except OSError:
                self.send_errors += 1

    def close(self) -> None:
        self.socket.close()
