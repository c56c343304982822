"""The manager's version rule (TF Serving's AvailabilityPreservingPolicy), without TensorFlow.

Versions are empty directories; a ``BAD`` file in one makes it fail verification, as a
truncated file does for a real version.
"""

from __future__ import annotations

import pytest

from zoo.server.servables import AVAILABLE, END, LoadedVersion, ModelSource, ServableManager


def make_versions(base, *versions, bad=()):
    for version in versions:
        (base / str(version)).mkdir(parents=True, exist_ok=True)
        if version in bad:
            (base / str(version) / "BAD").write_text("truncated")


def manager_for(sources):
    return ServableManager(
        lambda: sources(),
        verify=lambda path: ["a file was cut short"] if (path / "BAD").exists() else [],
        loader=lambda name, version, path: LoadedVersion(name, version, path, {}, {}, None),
    )


@pytest.fixture
def base(tmp_path):
    return tmp_path / "tiny"


def zoo_source(base, labels):
    """Like ZooSource: latest 1, every labelled version served besides, fallback on."""
    return lambda: [ModelSource("tiny", base, labels=labels, extra_aspired=frozenset(labels.values()), fallback=True)]


def test_corrupt_newest_does_not_unload_the_latest_when_a_label_holds_an_older_one(base):
    make_versions(base, 1, 2)
    manager = manager_for(zoo_source(base, {"stable": 2}))
    manager.poll()
    assert manager.available() == {"tiny": [2]}
    make_versions(base, 3)
    manager.poll()
    assert manager.available() == {"tiny": [2, 3]} and manager.lookup("tiny").version == 3
    make_versions(base, 4, bad={4})
    manager.poll()
    assert manager.available() == {"tiny": [2, 3]}  # was [2]: the label counted as availability
    assert manager.lookup("tiny").version == 3
    assert manager.lookup("tiny", label="stable").version == 2
    assert dict(manager.status("tiny"))[4].state == END
    manager.poll()  # and stays so: the failed version is not retried while unchanged
    assert manager.available() == {"tiny": [2, 3]}
    (base / "4" / "BAD").unlink()  # republished whole: 4 loads and 3 goes
    manager.poll()
    assert manager.available() == {"tiny": [2, 4]}


def test_only_the_newest_unaspired_version_stays_while_no_aspired_one_loads(base):
    # TF Serving's AspireErrorDontUnload: 0 and 1 serve, 7 is aspired and fails -> 0 goes, 1 stays
    make_versions(base, 0, 1)
    sources = [ModelSource("tiny", base, "latest", 2)]
    manager = manager_for(lambda: sources)
    manager.poll()
    assert manager.available() == {"tiny": [0, 1]}
    sources[:] = [ModelSource("tiny", base, "specific", versions=frozenset({7}))]
    make_versions(base, 7, bad={7})
    manager.poll()
    assert manager.available() == {"tiny": [1]}
    assert {v: s.state for v, s in manager.status("tiny")} == {0: END, 1: AVAILABLE, 7: END}
    make_versions(base, 8)
    sources[:] = [ModelSource("tiny", base, "specific", versions=frozenset({8}))]
    manager.poll()  # 8 loads: now 1 may go
    assert manager.available() == {"tiny": [8]}


def test_label_keeps_its_version_loaded_after_the_latest_moves_on(base):
    make_versions(base, 1, 2, 3)
    manager = manager_for(zoo_source(base, {"stable": 1}))
    manager.poll()
    assert manager.available() == {"tiny": [1, 3]}
    make_versions(base, 4)
    manager.poll()
    assert manager.available() == {"tiny": [1, 4]}
    assert manager.lookup("tiny", label="stable").version == 1


def test_started_after_a_corrupt_publish_the_newest_good_version_answers_the_latest(base):
    # the server was not running when 3 was unloaded above: it must end in the same state
    make_versions(base, 1, 2, 3, 4, bad={4})
    manager = manager_for(zoo_source(base, {"stable": 2}))
    manager.poll()
    assert manager.available() == {"tiny": [2, 3]} and manager.lookup("tiny").version == 3
    # a labelled version newer than every good unlabelled one: nothing older is loaded besides
    make_versions(base, 5, bad={5})
    manager = manager_for(zoo_source(base, {"stable": 3}))
    manager.poll()
    assert manager.available() == {"tiny": [3]}
