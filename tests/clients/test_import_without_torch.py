import subprocess
import sys

TORCH_FREE = (
    "emostream.clients", "emostream.runtime.audio_files", "emostream.clients.client", "emostream.clients.sources",
    "emostream.clients.stream", "emostream.clients.viewer.renderer", "emostream.clients.viewer.video",
    "emostream.clients.viewer.window", "emostream.clients.viewer.jitter", "emostream.clients.bridges.cli",
    "emostream.clients.bridges.runner", "emostream.clients.bridges.sinks", "emostream.runtime.protocol",
    "emostream.runtime.rigs", "emostream.runtime.zmq_publisher", "emostream.runtime.audio_files",
    "emostream.runtime.animation_files", "emostream.clients.demo", "emostream.clients.local_server",
    "emostream.cli",
    # The server's I/O side: an I/O process never loads torch (runtime/server.py).
    "emostream.runtime.server", "emostream.runtime.session_core", "emostream.runtime.audio_table",
    "emostream.runtime.messages", "emostream.runtime.links", "emostream.runtime.metrics",
)  # fmt: skip


def test_clients_and_the_servers_io_side_import_without_torch() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {TORCH_FREE!r}: importlib.import_module(name)\n"
        "loaded = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
