"""Bridges with real sockets on loopback: ZeroMQ SUB, a python-osc server, a UDP listener."""

import asyncio
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer

from emostream.clients.bridges.livelink import CURVE_NAMES, LiveLinkSender, decode_packet
from emostream.clients.bridges.runner import BridgeStats, run_bridge
from emostream.clients.bridges.sinks import ZmqSink
from emostream.clients.bridges.vmc import BLEND_NAMES, SMPLX_TO_UNITY, VmcSender, to_unity_quat
from emostream.clients.client import BlockingClient
from emostream.clients.sources import file_source
from emostream.runtime.rigs import FACE_CHANNELS, SMPLX_JOINTS
from emostream.runtime.rotations import axis_angle_to_quat
from emostream.runtime.zmq_publisher import PublishedFrame, ZmqPublisher, decode
from tests.fixtures import DATA, server_in_thread, speech_sample

SPEECH = DATA / "speech_16000.wav"  # 2 s: 120 face frames


def subscriber(endpoint: str, conflate: bool = False) -> zmq.Socket:
    sub = zmq.Context.instance().socket(zmq.SUB)
    if conflate:
        sub.setsockopt(zmq.CONFLATE, 1)
    sub.setsockopt(zmq.SUBSCRIBE, b"emostream/")
    sub.setsockopt(zmq.RCVTIMEO, 3000)
    sub.connect(endpoint)
    time.sleep(0.3)  # ZeroMQ's slow joiner: let the subscription reach the publisher
    return sub


def receive_all(sub: zmq.Socket) -> tuple[list[dict], list[PublishedFrame]]:
    headers, frames = [], []
    with pytest.raises(zmq.Again):
        while True:
            message = decode(sub.recv())
            (headers if isinstance(message, dict) else frames).append(message)
    return headers, frames


@pytest.mark.slow
def test_serve_zmq_publishes_every_frame_with_names_in_the_header() -> None:
    with server_in_thread(zmq_bind="tcp://127.0.0.1:*") as (server, url):
        assert server.io.zmq is not None
        sub = subscriber(server.io.zmq.endpoint)
        client = BlockingClient(url, 16_000)
        pcm = speech_sample(16_000)
        for start in range(0, pcm.size, 320):
            client.send_audio(pcm[start : start + 320])
        client.end()
        ws_frames = [f for f in client.frames() if f.stream == "face"]
        client.close()
        headers, frames = receive_all(sub)
        sub.close()
    assert headers and headers[0]["streams"]["face"]["channels"] == list(FACE_CHANNELS)
    assert headers[0]["streams"]["face"]["fps"] == 60
    assert [f.index for f in frames] == list(range(120))
    assert all(f.session == headers[0]["session"] and f.stream == "face" for f in frames)
    np.testing.assert_allclose(np.stack([f.values for f in frames]), np.stack([f.values for f in ws_frames]))
    assert frames[30].media_time_s == pytest.approx(0.5)


@pytest.mark.slow
def test_bridge_zmq_passes_every_frame_on_and_a_conflating_subscriber_keeps_only_the_latest() -> None:
    sink = ZmqSink("tcp://127.0.0.1:*")
    sub = subscriber(sink.publisher.endpoint)
    latest = subscriber(sink.publisher.endpoint, conflate=True)
    with server_in_thread() as (_, url):
        stats = asyncio.run(run_bridge(url, file_source(SPEECH, realtime=False), 16_000, sink))
    headers, frames = receive_all(sub)
    assert stats.frames == 120 and stats.sessions == 1
    assert [f.index for f in frames] == list(range(120))
    assert headers[0]["streams"]["face"]["channels"] == list(FACE_CHANNELS)
    last = decode(latest.recv())
    assert isinstance(last, PublishedFrame) and last.index == 119  # CONFLATE: only the newest message waits
    sub.close()
    latest.close()
    sink.close()


def test_a_stalled_subscriber_never_blocks_the_publisher_and_loses_frames_instead() -> None:
    publisher = ZmqPublisher("tcp://127.0.0.1:*", hwm=50)
    stalled = subscriber(publisher.endpoint)
    stalled.setsockopt(zmq.RCVHWM, 50)
    values = np.zeros(59, np.float32)
    started = time.perf_counter()
    for i in range(20_000):
        publisher.publish(PublishedFrame("face", "s", i, i / 60, 0, 0, False, values))
    assert time.perf_counter() - started < 5.0
    received = 0
    stalled.setsockopt(zmq.RCVTIMEO, 500)
    with pytest.raises(zmq.Again):
        while True:
            stalled.recv()
            received += 1
    assert 0 < received < 20_000  # bounded queues: most frames were dropped, none waited for the reader
    stalled.close()
    publisher.close()


class OscCollector:
    """A real OSC server (python-osc) that records every message it decodes."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple]] = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.messages.append((address, args)))
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int) -> list[tuple[str, tuple]]:
        deadline = time.monotonic() + 3
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.messages

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("bundled", [True, False])
def test_vmc_frames_decode_to_the_expected_addresses_names_and_values(bundled: bool) -> None:
    osc = OscCollector()
    sender = VmcSender("127.0.0.1", osc.port, bundled=bundled)
    face = np.linspace(0, 1, len(FACE_CHANNELS)).astype(np.float32)
    face[FACE_CHANNELS.index("headYaw")] = 0.3
    face[FACE_CHANNELS.index("headPitch")] = face[FACE_CHANNELS.index("headRoll")] = 0.0
    sender.send(face, media_time_s=1.5)
    messages = osc.wait_for(1 + 3 + 52 + 7 + 3)
    osc.close()
    sender.close()
    addresses = [a for a, _ in messages]
    assert addresses[0] == "/VMC/Ext/Root/Pos"
    assert addresses[-3:] == ["/VMC/Ext/Blend/Apply", "/VMC/Ext/T", "/VMC/Ext/OK"]
    blends = {args[0]: args[1] for a, args in messages if a == "/VMC/Ext/Blend/Val"}
    assert list(blends) == [*BLEND_NAMES, "A", "I", "U", "E", "O", "Blink_L", "Blink_R"]
    np.testing.assert_allclose(list(blends.values())[:52], face[:52], atol=1e-6)
    assert blends["Blink_L"] == pytest.approx(face[FACE_CHANNELS.index("eyeBlinkLeft")])
    bones = {args[0]: args[1:] for a, args in messages if a == "/VMC/Ext/Bone/Pos"}
    assert set(bones) == {"Head", "LeftEye", "RightEye"}
    # +yaw turns the face to the character's left; in Unity's left-handed frame that is a negative Y turn.
    np.testing.assert_allclose(bones["Head"][3:], [0, -np.sin(0.15), 0, np.cos(0.15)], atol=1e-6)
    assert dict(messages)["/VMC/Ext/T"] == (1.5,)


def test_a_vmc_assistant_sends_the_face_only_to_the_performer_port() -> None:
    sender = VmcSender(role="assistant")
    assert sender.address == ("127.0.0.1", 39540)
    face = np.zeros(len(FACE_CHANNELS), np.float32)
    face[FACE_CHANNELS.index("jawOpen")] = 0.8
    messages = sender.messages(face, 2.0, np.tile([0.0, 0.0, 0.0, 1.0], (55, 1)))
    sender.close()
    assert {m.address for m in messages} == {"/VMC/Ext/Blend/Val", "/VMC/Ext/Blend/Apply", "/VMC/Ext/T"}
    vowels = {m.params[0]: m.params[1] for m in messages if m.params and m.params[0] in ("A", "I", "U", "E", "O")}
    assert max(vowels, key=vowels.get) == "A" and vowels["A"] > 0.5  # an open jaw reads as the vowel a
    with pytest.raises(ValueError, match="performer or an assistant"):
        VmcSender(role="marionette")


def test_vmc_maps_smplx_joints_to_unity_humanoid_bones_with_handedness_converted() -> None:
    assert len(SMPLX_TO_UNITY) == len(SMPLX_JOINTS) == len(set(SMPLX_TO_UNITY.values()))
    assert SMPLX_TO_UNITY["left_elbow"] == "LeftLowerArm" and SMPLX_TO_UNITY["right_pinky3"] == "RightLittleDistal"
    body = np.tile([0.0, 0.0, 0.0, 1.0], (55, 1)).astype(np.float32)
    bend = axis_angle_to_quat(np.array([0.0, 0.0, 0.7]))  # the left elbow bends about +Z (right-handed)
    body[SMPLX_JOINTS.index("left_elbow")] = bend
    messages = VmcSender().messages(np.zeros(59, np.float32), 0.0, body)
    bones = {m.params[0]: m.params[1:] for m in messages if m.address == "/VMC/Ext/Bone/Pos"}
    assert len(bones) == 55
    np.testing.assert_allclose(bones["LeftLowerArm"][3:], to_unity_quat(bend), atol=1e-6)
    assert bones["LeftLowerArm"][3:][2] == pytest.approx(-bend[2])  # mirrored X flips the Z turn
    # The left arm hangs off toward the character's left: +X in SMPL-X, -X in Unity.
    assert bones["LeftUpperArm"][0] < 0 < bones["RightUpperArm"][0]


def test_live_link_packets_decode_back_into_the_61_curves() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(3)
    sender = LiveLinkSender("127.0.0.1", listener.getsockname()[1], subject="Presenter")
    face = np.random.default_rng(0).random(len(FACE_CHANNELS)).astype(np.float32)
    sender.send(face, frame_index=42)
    packet = decode_packet(listener.recv(2048))
    listener.close()
    sender.close()
    assert packet.subject == "Presenter" and packet.frame_number == 42 and packet.rate == (60, 1)
    assert len(CURVE_NAMES) == packet.curves.shape[0] == 61
    np.testing.assert_allclose(packet.curves[:52], face[:52])
    for name, source in (("HeadYaw", "headYaw"), ("LeftEyePitch", "leftEyePitch"), ("RightEyeYaw", "rightEyeYaw")):
        assert packet.curves[CURVE_NAMES.index(name)] == pytest.approx(face[FACE_CHANNELS.index(source)])
    assert packet.curves[CURVE_NAMES.index("LeftEyeRoll")] == 0.0
    with pytest.raises(ValueError):
        decode_packet(b"\x06\x00\x00")
    with pytest.raises(ValueError):
        decode_packet(sender.packet(face, 1)[:-4])


def test_pylivelinkface_an_independent_parser_reads_our_packets() -> None:
    """PyLiveLinkFace (PyPI), written against the iOS app's packets, decodes what the bridge sends."""
    pylivelinkface = pytest.importorskip("pylivelinkface", reason="PyLiveLinkFace (the dev extra) is not installed")
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(3)
    sender = LiveLinkSender("127.0.0.1", listener.getsockname()[1], subject="Presenter")
    face = np.random.default_rng(1).random(len(FACE_CHANNELS)).astype(np.float32)
    sender.send(face, frame_index=7)
    found, parsed = pylivelinkface.PyLiveLinkFace.decode(listener.recv(2048))
    listener.close()
    sender.close()
    assert found and parsed.name == "Presenter" and parsed.fps == 60 and parsed.uuid == f"${sender.device_id}"
    shapes = pylivelinkface.FaceBlendShape
    assert parsed.get_blendshape(shapes.JawOpen) == pytest.approx(face[FACE_CHANNELS.index("jawOpen")])
    assert parsed.get_blendshape(shapes.HeadYaw) == pytest.approx(face[FACE_CHANNELS.index("headYaw")])
    np.testing.assert_allclose([parsed.get_blendshape(s) for s in list(shapes)[:52]], face[:52], rtol=1e-6)


def test_senders_keep_going_when_nobody_listens() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    vmc, livelink = VmcSender("127.0.0.1", port), LiveLinkSender("127.0.0.1", port)
    for i in range(50):
        vmc.send(np.zeros(59, np.float32), i / 60)
        livelink.send(np.zeros(59, np.float32), i)
    assert vmc.sent + vmc.send_errors == 50 and livelink.sent + livelink.send_errors == 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_bridge_waits_for_a_server_and_reconnects_after_it_restarts(tmp_path: Path) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    sink = ZmqSink("tcp://127.0.0.1:*")
    stats = BridgeStats()
    speech = tmp_path / "long.wav"
    import soundfile

    soundfile.write(speech, np.tile(speech_sample(16_000), 2), 16_000)  # 4 s, paced in real time
    bridge = threading.Thread(
        target=lambda: asyncio.run(run_bridge(url, file_source(speech, realtime=True), 16_000, sink, stats=stats)),
        daemon=True,
    )
    bridge.start()
    time.sleep(0.8)  # no server yet: the bridge keeps trying
    with server_in_thread(port=port):
        time.sleep(1.2)
    frames_first = stats.frames
    with server_in_thread(port=port):  # the server comes back on the same port
        bridge.join(timeout=15)
    sink.close()
    assert not bridge.is_alive()
    assert stats.failed_connects >= 1 and stats.sessions == 2
    assert frames_first > 0 and stats.frames > frames_first


@pytest.mark.slow
def test_the_vmc_bridge_sends_humanoid_bones_once_the_server_streams_the_body() -> None:
    from emostream.clients.bridges.sinks import VmcSink

    osc = OscCollector()
    sink = VmcSink("127.0.0.1", osc.port)
    with server_in_thread(body=True, max_sessions=2) as (_, url):
        stats = asyncio.run(run_bridge(url, file_source(SPEECH, realtime=False), 16_000, sink))
    time.sleep(0.3)
    osc.close()
    sink.close()
    assert stats.frames == 120 + 60  # face and body frames
    bones = {args[0] for address, args in osc.messages if address == "/VMC/Ext/Bone/Pos"}
    assert {"Hips", "Spine", "LeftUpperArm", "RightLowerArm", "LeftIndexProximal", "Head"} <= bones
