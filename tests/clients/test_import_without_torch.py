import subprocess
import sys


def test_clients_and_the_runtime_modules_they_use_import_without_torch() -> None:
    code = (
        "import sys\n"
        "import clients, clients.audio_files, clients.client, clients.sources, clients.stream\n"
        "import clients.viewer.renderer, clients.viewer.video, clients.viewer.window, clients.viewer.jitter\n"
        "import clients.bridges.cli, clients.bridges.runner, clients.bridges.sinks\n"
        "import runtime.protocol, runtime.rigs, runtime.session_protocol, runtime.zmq_publisher\n"
        "loaded = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
