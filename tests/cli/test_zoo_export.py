"""`semzoo zoo export NAME --format bioimageio -o FILE.zip` on a tiny zoo (content: tests/registry)."""

from __future__ import annotations

import zipfile

import pytest

from tests.zoo_fixtures import make_tiny_zoo


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory):
    return make_tiny_zoo(tmp_path_factory.mktemp("cli-export") / "models", versions=2)


def test_export_writes_the_package_and_says_what_it_checked(cli, zoo_root, tmp_path, monkeypatch):
    import zoo.registry.bioimageio as bioimageio

    calls = []
    real = bioimageio.export_bioimageio

    def spy(version_dir, out_zip, **kwargs):
        calls.append((version_dir, kwargs))
        return real(version_dir, out_zip, **kwargs)

    monkeypatch.setattr(bioimageio, "export_bioimageio", spy)
    out = tmp_path / "tiny.zip"
    result = cli("zoo", "export", "tiny@stable", "--format", "bioimageio", "-o", out, "--zoo", zoo_root)
    assert result.exit_code == 0, result.output
    (version_dir, kwargs), = calls
    assert version_dir == zoo_root / "tiny" / "1" and kwargs["version"] == 1 and not kwargs["test"]
    assert "rdf.yaml" in zipfile.ZipFile(out).namelist()
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(f"wrote {out} (") and "tiny:1 as a bioimage.io 0.5" in line
    assert ("valid-format" in line) == bioimageio._spec_installed()


def test_export_errors_are_one_line(cli, zoo_root, tmp_path):
    for args, message in (
        (["tiny", "-o", tmp_path / "x.tar"], "is a .zip file"),
        (["tiny", "--format", "onnx", "-o", tmp_path / "x.zip"], "unknown export format"),
        (["nope", "-o", tmp_path / "x.zip"], "nope"),
    ):
        result = cli("zoo", "export", *args, "--zoo", zoo_root)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
