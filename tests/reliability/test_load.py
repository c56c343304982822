"""Load: 8 concurrent clients x 100 tiled requests while a version is published and a label moves.

Scaled to the 2-core CI machine: each client enhances 25 images of 40 x 40 px with the tiny
models' 32 px tiles (4 tiles each, one tile per request), i.e. 100 tile requests per client
and 800 in all, against one embedded server that polls the zoo every 50 ms. Half the clients
follow ``@stable``, half the latest version. Mid-run a new version (gain 3) is published and
``stable`` moves from version 1 to 2, so version 1 is unloaded while clients may be in the
middle of an image on it: they must restart that image on the new target, never fail, and
never mix two versions in one result.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.server.tiny_models import nearest2x, publish, set_labels, wait_for

CLIENTS, IMAGES, SIZE = 8, 25, 40
GAINS = {1: 1.0, 2: 2.0, 3: 3.0}


@pytest.mark.slow
def test_eight_clients_lose_nothing_while_versions_and_labels_change(zoo_copy):
    from zoo.client.client import EnhanceClient
    from zoo.server.server import EmbeddedServer

    rng = np.random.default_rng(6)
    images = [rng.integers(0, 4000, (SIZE, SIZE)).astype(np.uint16) for _ in range(4)]
    done = [0] * CLIENTS
    results: list[tuple[str, int, int, np.ndarray]] = []  # (follows, version, image index, output)
    failures: list[BaseException] = []
    lock = threading.Lock()

    with EmbeddedServer(zoo_copy, port=0, poll_seconds=0.05) as server:
        requests_before = server.prediction.requests

        def client_loop(index: int) -> None:
            follows = "stable" if index % 2 else "latest"
            client = EnhanceClient(server.target, "tiny", label="stable" if follows == "stable" else None,
                                   batch_size=1, concurrency=1, timeout=60, memory_budget_mb=1)
            try:
                for i in range(IMAGES):
                    k = (index + i) % len(images)
                    result = client.enhance(images[k], 14.2)
                    with lock:
                        results.append((follows, result.version, k, result.image))
                        done[index] += 1
            except BaseException as exc:  # noqa: BLE001 - any failure is what this test is about
                with lock:
                    failures.append(exc)
            finally:
                client.close()

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: failures or sum(done) >= CLIENTS * IMAGES // 4, timeout=120)
            publish(zoo_copy, "tiny", gain=3.0)  # v3: the new latest
            set_labels(zoo_copy, "tiny", {"stable": 2})  # stable 1 -> 2: v1 is no longer aspired
            wait_for(lambda: failures or server.manager.available().get("tiny") == [2, 3], timeout=60)
            seen = len(results)
            wait_for(lambda: failures or len(results) >= seen + CLIENTS or sum(done) == CLIENTS * IMAGES,
                     timeout=120)
        finally:
            for t in threads:
                t.join(timeout=300)
        tile_requests = server.prediction.requests - requests_before

    assert not failures, repr(failures[0])
    assert sum(done) == CLIENTS * IMAGES
    assert tile_requests >= CLIENTS * IMAGES * 4  # 4 tiles per image, one per request (+ restarts)
    for follows, version, k, out in results:
        image = images[k].astype(np.float64)
        expected = GAINS[version] * (nearest2x(image) - image.mean()) + image.mean()
        np.testing.assert_allclose(out, np.clip(np.rint(expected), 0, 65535), atol=1)  # one version per image
    versions = {follows: [v for f, v, _, _ in results if f == follows] for follows in ("stable", "latest")}
    assert set(versions["stable"]) == {1, 2} and set(versions["latest"]) == {2, 3}
    # once the change had landed, every client got the new target
    assert versions["stable"][-CLIENTS // 2:] == [2] * (CLIENTS // 2)
    assert versions["latest"][-CLIENTS // 2:] == [3] * (CLIENTS // 2)
