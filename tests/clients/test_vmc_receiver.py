"""The VMC bridge against an OSC receiver not written here: osc.js (npm `osc`, installed into .tools/ by
scripts/setup --tests) listening on UDP in Node, as a Marionette (performer role) and as a Performer
(assistant role). It decodes every bundle and message the bridge sends; the test reads back what it got."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from emostream.clients.bridges.vmc import BLEND_NAMES, VmcSender
from emostream.runtime.rigs import FACE_CHANNELS, SMPLX_JOINTS

OSC_JS = Path(__file__).resolve().parents[2] / ".tools" / "node_modules" / "osc"
RECEIVER = """
const osc = require(process.argv[1]);
const port = new osc.UDPPort({ localAddress: "127.0.0.1", localPort: 0, metadata: false });
const print = (message) => console.log(JSON.stringify({ address: message.address, args: message.args }));
port.on("ready", () => console.log(JSON.stringify({ port: port.socket.address().port })));
port.on("message", print);  // osc.js reports every message, those inside bundles too
port.on("error", (error) => console.log(JSON.stringify({ error: error.message })));
port.open();
setTimeout(() => process.exit(0), Number(process.argv[2]));
"""

pytestmark = [
    pytest.mark.slow,  # the receiver listens for 4 s
    pytest.mark.skipif(shutil.which("node") is None or not OSC_JS.exists(),
                       reason="node or npm's osc is missing (setup --tests installs both)"),
]  # fmt: skip


def receive(role: str, bundled: bool, frames: int) -> list[dict]:
    """Starts osc.js, sends `frames` frames to it in `role`, returns the messages it decoded."""
    node = subprocess.Popen(["node", "-e", RECEIVER, str(OSC_JS), "4000"], stdout=subprocess.PIPE, text=True)
    assert node.stdout is not None
    port = json.loads(node.stdout.readline())["port"]
    sender = VmcSender("127.0.0.1", port, bundled=bundled, role=role)
    face = np.zeros(len(FACE_CHANNELS), np.float32)
    body = np.tile([0.0, 0.0, 0.0, 1.0], (len(SMPLX_JOINTS), 1)).astype(np.float32)
    for k in range(frames):
        face[FACE_CHANNELS.index("jawOpen")] = 0.1 * k
        sender.send(face, media_time_s=k / 60, body=body)
        time.sleep(0.01)
    sender.close()
    out, _ = node.communicate(timeout=10)
    return [json.loads(line) for line in out.splitlines() if line]


@pytest.mark.parametrize("bundled", [True, False])
def test_a_marionette_built_on_osc_js_receives_bones_blendshapes_and_frame_markers(bundled: bool) -> None:
    messages = receive("performer", bundled, frames=5)
    assert not [m for m in messages if "error" in m]
    by_address: dict[str, list[list]] = {}
    for m in messages:
        by_address.setdefault(m["address"], []).append(m["args"])
    assert len(by_address["/VMC/Ext/OK"]) == 5 and by_address["/VMC/Ext/OK"][0] == [1]
    assert [t[0] for t in by_address["/VMC/Ext/T"]] == pytest.approx([k / 60 for k in range(5)], abs=1e-6)
    assert len(by_address["/VMC/Ext/Blend/Apply"]) == 5
    bones = {args[0] for args in by_address["/VMC/Ext/Bone/Pos"]}
    assert {"Hips", "LeftUpperArm", "RightHand", "Head", "LeftEye", "LeftLittleDistal"} <= bones and len(bones) == 55
    assert all(len(args) == 8 for args in by_address["/VMC/Ext/Bone/Pos"])  # name, position, quaternion
    assert by_address["/VMC/Ext/Root/Pos"][0] == ["root", 0, 0, 0, 0, 0, 0, 1]
    jaw = [args[1] for args in by_address["/VMC/Ext/Blend/Val"] if args[0] == "JawOpen"]
    assert jaw == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4], abs=1e-6)  # in order, float32-exact
    names = {args[0] for args in by_address["/VMC/Ext/Blend/Val"]}
    assert set(BLEND_NAMES) <= names and {"A", "I", "U", "E", "O", "Blink_L", "Blink_R"} <= names


def test_a_performer_built_on_osc_js_receives_the_face_alone_from_an_assistant() -> None:
    messages = receive("assistant", True, frames=3)
    addresses = {m["address"] for m in messages}
    assert addresses == {"/VMC/Ext/Blend/Val", "/VMC/Ext/Blend/Apply", "/VMC/Ext/T"}
    vowels = [m["args"] for m in messages if m["address"] == "/VMC/Ext/Blend/Val" and m["args"][0] == "A"]
    assert len(vowels) == 3 and vowels[0][1] < 0.05 < vowels[2][1]  # "A" opens as the jaw does
