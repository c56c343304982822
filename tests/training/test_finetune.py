"""Fine-tuning (issue 5): a tiny-preset fine-tune on tiny simulated pairs, its refusals, its folds.

One real fine-tune runs per module (2 pairs -> leave-one-out, 2 folds + the final run on both
pairs), with a server polling the zoo that must pick the new model up without a restart.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.zoo_fixtures import make_tiny_zoo
from zoo.errors import UserError

SIZE = (192, 160)  # W x H of the simulated pairs: a few 32-px tiny-preset patches each
GOLD_LR_NM = 14.2  # the tiny parent is published for gold-on-carbon at 14.2 nm (zoo_fixtures)


def simulate(out, pairs, seed=3, sample="gold-on-carbon"):
    from zoo.sim.dataset import simulate_dataset

    simulate_dataset(out, sample, pairs=pairs, seed=seed, size=SIZE)
    return out


@pytest.fixture(scope="module")
def parent_zoo(tmp_path_factory):
    return make_tiny_zoo(tmp_path_factory.mktemp("parent") / "models")


@pytest.fixture(scope="module")
def calib2(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("calib") / "calib", 2)


@pytest.fixture
def zoo_copy(parent_zoo, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(parent_zoo, root)
    return root


@pytest.fixture(scope="module")
def served_finetune(parent_zoo, calib2, tmp_path_factory):
    """A server polling the zoo, then a real fine-tune publishing tiny-gold:1 @canary."""
    from zoo.server.server import EmbeddedServer
    from zoo.training.finetune import finetune

    root = tmp_path_factory.mktemp("served") / "models"
    shutil.copytree(parent_zoo, root)
    reports = []
    with EmbeddedServer(root, port=0, poll_seconds=0.05) as server:
        result = finetune(calib2, parent="tiny@stable", name="tiny-gold", zoo_root=root, steps=8,
                          label="canary", seed=1, progress=lambda done, total: reports.append((done, total)),
                          settings={"beta": 1.0})
        yield server, root, result, reports


@pytest.mark.slow
def test_finetune_publishes_a_version_with_its_lineage(served_finetune, calib2):
    from zoo.data.prepare import match_pairs
    from zoo.registry.store import Zoo
    from zoo.training.calibration import calibration_hash

    _, root, result, reports = served_finetune
    zoo = Zoo(root)
    assert (result.name, result.version, result.parent) == ("tiny-gold", 1, "tiny:1")
    assert zoo.versions("tiny-gold") == [1] and zoo.labels("tiny-gold") == {"canary": 1}
    assert zoo.verify("tiny-gold", 1) == []
    card = zoo.card("tiny-gold", 1)
    assert card["parent"] == "tiny:1"
    assert card["input_pixel_size_nm"] == pytest.approx(GOLD_LR_NM)
    calibration = card["training"]["calibration"]
    pairs, _ = match_pairs(calib2)
    assert calibration["sha256"] == calibration_hash(pairs, None, None) == result.calibration_sha256
    assert calibration["pairs"] == calibration["trained_on"] == ["pair-000", "pair-001"]
    assert calibration["settings"] == {"beta": 1.0}
    assert card["training"]["loss"]["beta"] == 1.0  # the setting reached the run's config
    assert card["training"]["preset"] == "tiny" and card["training"]["steps"] == result.steps >= 1
    # Two pairs: leave-one-out, each pair held out once, the published model retrained on both.
    evaluation = card["evaluation"]
    assert [f["held_out"] for f in evaluation["folds"]] == [["pair-000"], ["pair-001"]]
    assert evaluation["held_out"] == ["pair-000", "pair-001"]
    assert "leave-one-out" in evaluation["method"]
    for row in ("lanczos", "parent", "finetuned"):
        assert 5 < evaluation["table"][row]["psnr_db"] < 60
        assert 0 < evaluation["table"][row]["ssim"] <= 1
        # gold-on-carbon truth knows the particles: the gap columns are there
        assert "undetected_gaps_percent" in evaluation["table"][row]
    for fold in result.folds:
        assert 1 <= fold.best_step <= fold.steps_run <= 8
        assert fold.best_val_l1 < fold.parent_val_l1  # early stopping kept an improvement
        assert fold.val_history and min(v for _, v in fold.val_history) == pytest.approx(fold.best_val_l1)
        assert [s for s, _ in fold.val_history] == sorted({s for s, _ in fold.val_history})
    assert evaluation["folds"][0]["val_l1_by_step"] == [[s, pytest.approx(v, abs=1e-4)] for s, v in result.folds[0].val_history]
    assert evaluation["summary"]["psnr_gain_over_parent_db"] == pytest.approx(result.psnr_gain_db, abs=1e-3)
    # The parent itself is untouched, and progress reached its end.
    assert zoo.versions("tiny") == [1] and zoo.card("tiny", 1)["parent"] is None
    assert reports[-1][0] == reports[-1][1] and all(d <= t for d, t in reports)


@pytest.mark.slow
def test_published_weights_are_the_parents_with_a_fine_tuned_decoder(served_finetune, parent_zoo):
    """freeze="encoder": the input block and contracting path keep the parent's weights."""
    from zoo.nets.generator import build_generator
    from zoo.nets.presets import get_preset
    from zoo.registry.export import load_generator_weights
    from zoo.registry.store import Zoo

    _, root, _, _ = served_finetune
    nets = {}
    for key, zoo_root, name in (("parent", parent_zoo, "tiny"), ("child", root, "tiny-gold")):
        nets[key] = build_generator(get_preset("tiny"))
        load_generator_weights(Zoo(zoo_root).version_dir(name, 1), nets[key])
    change = {}
    for a, b in zip(nets["parent"].weights, nets["child"].weights):
        layer = a.path.split("/")[0]
        change[layer] = max(change.get(layer, 0.0), float(np.max(np.abs(a.numpy() - b.numpy()))))
    encoder = {k: v for k, v in change.items() if k.startswith(("in_conv", "down"))}
    decoder = {k: v for k, v in change.items() if k.startswith(("up", "residual"))}
    assert encoder and decoder
    # Frozen: only float32 rounding of the weight average (decay * w + (1 - decay) * w).
    assert max(encoder.values()) < 1e-6
    assert min(decoder.values()) > 1e-5


@pytest.mark.slow
def test_running_server_picks_up_the_new_model(served_finetune):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tests.server.test_server import card_request, outputs, predict_request
    from tests.server.tiny_models import wait_for
    from zoo.client.protos import to_ndarray

    server, _, _, _ = served_finetune
    wait_for(lambda: server.manager.available().get("tiny-gold") == [1])
    with grpc.insecure_channel(server.target) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        image = np.random.default_rng(0).standard_normal((1, 16, 24, 1)).astype(np.float32)
        response = predict.Predict(predict_request("tiny-gold", label="canary", image=image), timeout=60)
        assert outputs(response).shape == (1, 32, 48, 1)
        request = card_request(1)
        request.model_spec.name = "tiny-gold"
        card = json.loads(to_ndarray(predict.Predict(request, timeout=60).outputs["card"])[0])
    assert card["parent"] == "tiny:1"


# --- refusals: nothing is published -----------------------------------------------------------


def _refused(zoo_root, calib, match, **kwargs):
    from zoo.registry.store import Zoo
    from zoo.training.finetune import finetune

    before = sorted(p.relative_to(zoo_root) for p in zoo_root.rglob("*"))
    args = {"parent": "tiny", "name": "tiny-new", "zoo_root": zoo_root, "steps": 2, **kwargs}
    with pytest.raises(UserError, match=match) as info:
        finetune(calib, **args)
    assert "\n" not in str(info.value)
    assert sorted(p.relative_to(zoo_root) for p in zoo_root.rglob("*")) == before
    assert Zoo(zoo_root).models() == ["tiny"]


def test_refuses_an_unknown_parent(zoo_copy, calib2):
    _refused(zoo_copy, calib2, "no model named 'nope'", parent="nope")
    _refused(zoo_copy, calib2, "has no version 7", parent="tiny:7")
    _refused(zoo_copy, calib2, "has no label 'gold'", parent="tiny@gold")


def test_refuses_no_pairs(zoo_copy, tmp_path):
    (tmp_path / "empty" / "lr").mkdir(parents=True)
    (tmp_path / "empty" / "hr").mkdir()
    _refused(zoo_copy, tmp_path / "empty", "no calibration images")
    _refused(zoo_copy, tmp_path / "missing", "no such directory")


def _write_pair(calib, name, lr, hr, lr_nm, hr_nm):
    from zoo.data.sem_tiff import write_sem

    for side in ("lr", "hr"):
        (calib / side).mkdir(parents=True, exist_ok=True)
    write_sem(calib / "lr" / f"{name}.tif", lr, lr_nm)
    write_sem(calib / "hr" / f"{name}.tif", hr, hr_nm)


def test_refuses_a_ratio_unlike_the_parents_magnification(zoo_copy, tmp_path):
    from zoo.sim.simulate import simulate_pair

    pair = simulate_pair("gold-on-carbon", seed=4, size=SIZE)
    calib = tmp_path / "calib"
    _write_pair(calib, "good", pair.lr, pair.hr, 14.2, 7.1)
    _write_pair(calib, "x3", pair.lr, pair.hr, 14.2, 14.2 / 3)
    _refused(zoo_copy, calib, r"pair x3: .* x3 pair, but the parent tiny:1 magnifies x2")


def test_refuses_pairs_that_fail_registration_by_name(zoo_copy, tmp_path, calib2):
    rng = np.random.default_rng(8)
    calib = tmp_path / "calib"
    shutil.copytree(calib2, calib)
    noise = rng.integers(0, 65535, (SIZE[1], SIZE[0]), dtype=np.uint16)
    _write_pair(calib, "unrelated", noise, rng.permutation(noise.ravel()).reshape(noise.shape), 14.2, 7.1)
    _refused(zoo_copy, calib, "failed registration: unrelated")


def publish_copy(zoo_root, name, parent=None):
    """Publish tiny:1's files as a new version of ``name`` with card parent ``parent`` (no export)."""
    from zoo.registry.card import read_card, write_card
    from zoo.registry.store import Zoo

    zoo = Zoo(zoo_root)

    def build(out):
        shutil.copytree(zoo.version_dir("tiny", 1), out, dirs_exist_ok=True)
        write_card(out, {**read_card(out), "name": name, "parent": parent, "files": {}})

    return zoo.publish_version(name, build)


def test_refuses_a_name_of_another_lineage(zoo_copy, calib2):
    from zoo.registry.store import Zoo
    from zoo.training.finetune import finetune

    publish_copy(zoo_copy, "other")  # a model trained from scratch
    with pytest.raises(UserError, match="'other' already exists and descends from 'other'"):
        finetune(calib2, parent="tiny", name="other", zoo_root=zoo_copy, steps=2)
    assert Zoo(zoo_copy).versions("other") == [1]


def test_lineage_follows_parents_through_the_zoo(zoo_copy):
    from zoo.registry.store import Zoo
    from zoo.training.finetune import check_lineage

    publish_copy(zoo_copy, "child", "tiny:1")
    publish_copy(zoo_copy, "grandchild", "child:1")
    publish_copy(zoo_copy, "other")
    zoo = Zoo(zoo_copy)
    check_lineage(zoo, "brand-new", ("other", 1))  # a new name: always fine
    check_lineage(zoo, "grandchild", ("tiny", 1))  # same root model
    check_lineage(zoo, "child", ("grandchild", 1))
    check_lineage(zoo, "tiny", ("tiny", 1))  # a calibrated version of the model itself
    for name, parent in (("grandchild", ("other", 1)), ("other", ("child", 1))):
        with pytest.raises(UserError, match="would mix lineages"):
            check_lineage(zoo, name, parent)


def test_refuses_bad_arguments(zoo_copy, calib2):
    _refused(zoo_copy, calib2, "--freeze must be one of", freeze="decoder")
    _refused(zoo_copy, calib2, "invalid model name", name="Bad Name")
    _refused(zoo_copy, calib2, "invalid label", label="7")
    _refused(zoo_copy, calib2, "--steps must be a positive", steps=0)
    _refused(zoo_copy, calib2, "keeps the parent's generator", settings={"patch_size": 64})
    _refused(zoo_copy, calib2, "its own validation schedule", settings={"steps": 3})
    _refused(zoo_copy, calib2, "ema_decay must be in", settings={"ema_decay": 1.5})


def test_settings_win_over_the_fine_tunes_own():
    from zoo.nets.presets import get_preset
    from zoo.training.finetune_run import FINETUNE_BETA, LR_FACTOR, _config_overrides

    preset = get_preset("small")
    own = _config_overrides(preset, 200, 40)
    assert own["g_learning_rate"] == pytest.approx(preset.g_learning_rate * LR_FACTOR)
    assert own["beta"] == FINETUNE_BETA < preset.beta  # a weak adversarial term by default
    changed = _config_overrides(preset, 200, 40, {"beta": 6.0, "g_learning_rate": 3e-5})
    assert (changed["beta"], changed["g_learning_rate"]) == (6.0, 3e-5)
    assert {k: v for k, v in changed.items() if k not in ("beta", "g_learning_rate")} == {
        k: v for k, v in own.items() if k not in ("beta", "g_learning_rate")}


# --- folds and augmentation -------------------------------------------------------------------


def _prepared(raw, out):
    from zoo.nets.presets import get_preset
    from zoo.training.calibration import prepare_calibration

    prepare_calibration(raw, out, patch_size=get_preset("tiny").patch_size, lr_pixel_size_nm=None,
                        hr_pixel_size_nm=None, seed=0)
    return out


def test_one_pair_holds_out_a_region_without_overlap(tmp_path):
    from zoo.data import patches as P
    from zoo.data.sem_tiff import read_sem
    from zoo.training.calibration import _region_split, folds

    raw = simulate(tmp_path / "raw", 1)
    data = _prepared(raw, tmp_path / "data")
    (fold,) = folds(data, tmp_path / "folds", seed=0)
    manifest = P.load_manifest(fold.data_dir)
    splits = {p["split"]: p for p in manifest["pairs"]}
    assert set(splits) == {"train", "val"} and all(p["patches_kept"] for p in splits.values())
    assert fold.val_patches == splits["val"]["patches_kept"]
    (held,) = fold.evaluation
    width = P.load_manifest(data)["pairs"][0]["registered_size"][0]  # wider than high: split x
    split = _region_split(width, 32)
    assert held.hr.shape[1] == width - split >= 32 and split % 2 == 0
    assert held.hr.shape == (2 * held.lr.shape[0], 2 * held.lr.shape[1])
    # the truth moved into the region: every particle kept lies inside it
    assert held.truth is None or all(0 <= p["x_hr"] < held.hr.shape[1] for p in held.truth["particles"])
    # training patches come from the columns left of the split only
    train_lr, _ = P.read_shard(fold.data_dir / splits["train"]["shard"], 32)
    registered_lr = read_sem(data / "registered" / "lr-native" / "pair-000.tif").image.astype(np.float32)
    left = P.normalise(registered_lr[:, : split // 2])[0]  # each region is normalised as an image
    for patch in train_lr[:, :, :, 0]:
        assert _found_in(patch, left)


def _found_in(patch, image) -> bool:
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(image, patch.shape)
    return bool(np.any(np.all(np.isclose(windows, patch, atol=1e-4), axis=(-1, -2))))


def test_two_and_four_pairs_fold_by_pair(tmp_path):
    from zoo.data import patches as P
    from zoo.training.calibration import all_pairs_dir, folds

    data = _prepared(simulate(tmp_path / "raw", 4), tmp_path / "data")
    (fold,) = folds(data, tmp_path / "folds", seed=0)  # > 3 pairs: one held out, chosen by seed
    assert len(fold.held_out) == 1 and sorted(fold.train + fold.held_out) == [f"pair-00{i}" for i in range(4)]
    val = [p["name"] for p in P.load_manifest(fold.data_dir)["pairs"] if p["split"] == "val"]
    assert val == fold.held_out
    everything = P.load_manifest(all_pairs_dir(data, tmp_path / "all"))
    assert {p["split"] for p in everything["pairs"]} == {"train"} and everything["patches"]["val"] == 0
    # the fold reads through the standard tf.data pipeline
    batch = next(iter(P.training_dataset(fold.data_dir, split="val", batch_size=2, augment=False,
                                         shuffle=False, repeat=False)))
    assert batch[0].shape == (2, 16, 16, 1) and batch[1].shape == (2, 32, 32, 1)


def test_intensity_jitter_is_shared_by_lr_and_hr_and_seeded():
    import tensorflow as tf

    from zoo.training.calibration import JITTER_GAIN, JITTER_OFFSET, jittered

    rng = np.random.default_rng(2)
    lr = rng.standard_normal((3, 4, 4, 1)).astype(np.float32)
    hr = rng.standard_normal((3, 8, 8, 1)).astype(np.float32)
    ds = tf.data.Dataset.from_tensors((lr, hr)).repeat(2)
    runs = [list(jittered(ds, seed=5).as_numpy_iterator()) for _ in range(2)]
    other = list(jittered(ds, seed=6).as_numpy_iterator())
    for (lr_j, hr_j), (lr_k, _) in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(lr_j, lr_k)  # deterministic per seed
        for i in range(3):  # one gain/offset per example, the same for LR and HR
            gain, offset = np.polyfit(lr[i].ravel(), lr_j[i].ravel(), 1)
            assert abs(gain - 1) <= JITTER_GAIN + 1e-5 and abs(offset) <= JITTER_OFFSET + 1e-5
            np.testing.assert_allclose(hr_j[i], gain * hr[i] + offset, atol=1e-4)
    assert not np.allclose(runs[0][0][0], runs[0][1][0])  # batches differ from each other
    assert not np.allclose(runs[0][0][0], other[0][0])


def test_never_beating_the_parent_says_what_the_validations_saw():
    from zoo.training.finetune import FoldResult, never_beat_message

    fold = FoldResult("all", ["a"], ["a"], 0, 360, 0.30, 0.30, {},
                      val_history=[(120, 0.3123), (240, 0.3201), (360, 0.3305)])
    message = never_beat_message("general:2", fold, 1200)
    assert "\n" not in message and message.startswith("fine-tuning never beat the parent general:2")
    assert "validation L1 0.3000" in message and "0.3123 at 120, 0.3201 at 240, 0.3305 at 360" in message
    assert "first validation came at step 120" in message and "fewer --steps" in message
    assert "never validated" in never_beat_message("p", FoldResult("x", [], [], 0, 4, 1.0, 1.0, {}), 4)
