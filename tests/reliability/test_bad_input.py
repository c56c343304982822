"""Bad input through the CLI and over gRPC: one clear line, non-zero exit, nothing written.

Every bad file goes through `semzoo enhance` (with an existing output and --overwrite, so a
refusal that came too late would show as a changed file) and `semzoo info`.
"""

from __future__ import annotations

import struct

import grpc
import numpy as np
import pytest
import tifffile

SENTINEL = b"an earlier result that must survive"


def _good(path, rng, pixel_size=14.2):
    from zoo.data.sem_tiff import write_sem

    write_sem(path, rng.integers(0, 4000, (40, 48)).astype(np.uint16), pixel_size)
    return path


def _huge_header(path, rng):
    """A valid 8x8 TIFF whose header then claims 65535 x 65535 pixels (4.3 G)."""
    tifffile.imwrite(path, rng.integers(0, 255, (8, 8)).astype(np.uint8))
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages.first.tags
        for name in ("ImageWidth", "ImageLength"):
            tag = tags[name]
            fmt = "<H" if tag.dtype == 3 else "<I"
            struct.pack_into(fmt, data, tag.valueoffset, 65535)
    path.write_bytes(bytes(data))
    return path


def _float(path, value):
    image = np.ones((16, 16), np.float32)
    image[3, 4] = value
    tifffile.imwrite(path, image)
    return path


def _bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def _one_pixel(path):
    tifffile.imwrite(path, np.zeros((1, 1), np.uint16))
    return path


BAD_FILES = {
    "empty": (lambda p, rng: _bytes(p, b""), "empty file"),
    "truncated": (lambda p, rng: _bytes(p, _good(p, rng).read_bytes()[:2000]), "truncated"),
    "not-a-tiff": (lambda p, rng: _bytes(p, b"\x89PNG\r\n\x1a\n" + bytes(200)), "not a readable TIFF"),
    "1x1": (lambda p, rng: _one_pixel(p), "need at least 2x2"),
    "nan": (lambda p, rng: _float(p, np.nan), "NaN or infinite"),
    "inf": (lambda p, rng: _float(p, np.inf), "NaN or infinite"),
    "huge-header": (_huge_header, "over the pixel budget"),
}


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    return errors[0]


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_one_line_error_and_nothing_is_written(cli, base_zoo, tmp_path, rng, case):
    make, message = BAD_FILES[case]
    source = make(tmp_path / "in.tif", rng)
    out = tmp_path / "out.tif"
    out.write_bytes(SENTINEL)
    result = cli("enhance", source, "-o", out, "--zoo", base_zoo, "--model", "tiny",
                 "--pixel-size", "14.2", "--overwrite")
    assert result.exit_code == 2
    assert message in _one_error_line(result) and str(source) in _one_error_line(result)
    assert out.read_bytes() == SENTINEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif"]  # no temp left behind

    result = cli("info", source)
    assert result.exit_code == 2 and message in _one_error_line(result)


def test_huge_header_is_refused_before_reading(tmp_path, rng, monkeypatch):
    from zoo.data import sem_tiff
    from zoo.errors import UserError

    source = _huge_header(tmp_path / "huge.tif", rng)

    def never(*args, **kwargs):
        raise AssertionError("pixel data was read")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", never)
    with pytest.raises(UserError, match="65535x65535 = 4294836225 pixels, over the pixel budget"):
        sem_tiff.read_sem(source)


def test_bad_file_in_a_folder_means_no_output_at_all(cli, base_zoo, tmp_path, rng):
    folder = tmp_path / "in"
    folder.mkdir()
    _good(folder / "a.tif", rng)
    (folder / "b.tif").write_bytes(b"")
    result = cli("enhance", folder, "-o", tmp_path / "out", "--zoo", base_zoo, "--model", "tiny")
    assert result.exit_code == 2 and "b.tif: empty file" in _one_error_line(result)
    assert not (tmp_path / "out").exists()


def test_rgb_is_accepted_with_a_warning(cli, base_zoo, tmp_path, rng):
    source = tmp_path / "rgb.tif"
    tifffile.imwrite(source, rng.integers(0, 255, (24, 32, 3)).astype(np.uint8), photometric="rgb")
    out = tmp_path / "out.tif"
    result = cli("enhance", source, "-o", out, "--zoo", base_zoo, "--model", "tiny", "--pixel-size", "14.2")
    assert result.exit_code == 0, result.output
    assert any(line.startswith("warning:") and "RGB" in line and "gray" in line
               for line in result.output.splitlines()), result.output
    assert tifffile.imread(out).shape == (48, 64)


def test_missing_pixel_size_is_refused_unless_given(cli, base_zoo, tmp_path, rng):
    source = tmp_path / "plain.tif"
    tifffile.imwrite(source, rng.integers(0, 4000, (16, 16)).astype(np.uint16))
    out = tmp_path / "out.tif"
    result = cli("enhance", source, "-o", out, "--zoo", base_zoo, "--model", "tiny")
    assert result.exit_code == 2 and "no pixel size" in _one_error_line(result) and "--pixel-size" in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "model, message",
    [
        ("nope", "no model named 'nope'"),
        ("tiny:9", "has no version 9"),
        ("tiny@beta", "has no label 'beta'"),
        ("../tiny", "invalid model"),
        ("tiny/../../etc", "invalid model"),
        ("/etc/passwd", "invalid model"),
        ("TINY", "invalid model"),
    ],
)
def test_unknown_or_path_like_model_is_refused(cli, base_zoo, tmp_path, rng, model, message):
    source = _good(tmp_path / "in.tif", rng)
    out = tmp_path / "out.tif"
    for command in (["enhance", source, "-o", out], ["bench", "--quick"]):
        result = cli(*command, "--zoo", base_zoo, "--model", model)
        assert result.exit_code == 2 and message in _one_error_line(result), result.output
    assert not out.exists()


# ---- gRPC ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_limit_server(base_zoo):
    from zoo.server.server import EmbeddedServer

    with EmbeddedServer(base_zoo, port=0, poll_seconds=0, max_message_mb=1) as srv:
        yield srv


def _predict(target, image, *, send_limit_mb=64, dtype=None):
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from tests.server.test_server import predict_request

    options = [("grpc.max_send_message_length", send_limit_mb << 20),
               ("grpc.max_receive_message_length", send_limit_mb << 20)]
    with grpc.insecure_channel(target, options=options) as channel:
        request = predict_request(image=image) if dtype is None else predict_request(image=image, dtype=dtype)
        assert isinstance(request, predict_pb2.PredictRequest)
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)


def test_over_size_request_is_resource_exhausted_and_the_server_keeps_serving(small_limit_server):
    big = np.zeros((1, 512, 600, 1), np.float32)  # 1.2 MiB > the server's 1 MiB
    with pytest.raises(grpc.RpcError) as info:
        _predict(small_limit_server.target, big)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    response = _predict(small_limit_server.target, np.ones((1, 4, 4, 1), np.float32))
    assert response.model_spec.version.value == 2


def test_over_size_response_is_resource_exhausted_for_the_client(small_limit_server):
    from zoo.client.client import EnhanceClient, ServerError

    # 300 x 300 in: 0.34 MiB request, 1.4 MiB response -- over the server's send limit
    client = EnhanceClient(small_limit_server.target, "tiny", batch_size=1)
    with pytest.raises(ServerError) as info:
        client.predict(np.zeros((1, 300, 300, 1), np.float32))
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(
    "image, dtype, fragment",
    [
        (np.zeros((1, 4, 4, 1), np.int32), np.int32, "Expects arg[0] to be float but int32 is provided"),
        (np.zeros((1, 1, 4, 4, 1), np.float32), None, "rank 5"),
        (np.zeros((4,), np.float32), None, "rank 1"),
    ],
)
def test_wrong_dtype_or_rank_is_invalid_argument(small_limit_server, image, dtype, fragment):
    with pytest.raises(grpc.RpcError) as info:
        _predict(small_limit_server.target, image, dtype=dtype)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert fragment in info.value.details()
