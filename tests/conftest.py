from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def session_engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Engines built by the tests (`emostream serve` and the demo export their ONNX graphs at the first
    start) go to a folder of the session's, built once for all its tests, never to the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMOSTREAM_CACHE", str(tmp_path_factory.mktemp("engines")))
        yield
