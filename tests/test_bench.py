"""`semzoo bench --quick` on a tiny model: the table's structure and sanity, never its speed."""

from __future__ import annotations

import re

import pytest

from tests.zoo_fixtures import make_tiny_zoo

NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


@pytest.fixture(scope="module")
def bench_zoo(tmp_path_factory):
    return make_tiny_zoo(tmp_path_factory.mktemp("bench") / "models")


def _section(text: str, title: str) -> list[list[str]]:
    """The rows (cells) of the markdown table under the heading that starts with ``title``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## " + title))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|") and not line.startswith("| ---"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows[1:]  # without the header


def _positive(cell: str) -> float:
    match = re.search(NUMBER, cell)
    assert match, f"no number in {cell!r}"
    value = float(match.group(1))
    assert value > 0, cell
    return value


@pytest.mark.slow
def test_quick_bench_writes_a_sane_table(cli, bench_zoo, tmp_path):
    out = tmp_path / "bench.md"
    result = cli("bench", "--zoo", bench_zoo, "--model", "tiny@stable", "--quick", "--out", out)
    assert result.exit_code == 0, result.output
    assert "devices: CPU:0" in result.stderr and "devices:" not in result.stdout
    text = out.read_text()
    assert text in result.stdout  # printed and written alike
    assert text.startswith("# semzoo bench: tiny version 1")
    assert re.search(r"model cost: " + NUMBER + r" GFLOP per 192x192 output image", text)
    conv = re.search(NUMBER + r" GFLOP/s direct vs " + NUMBER + r" GFLOP/s for one 64->64 3x3 float32 "
                     r"convolution at 64x64 = " + NUMBER + r", target >= 0.75", text)
    assert conv and float(conv.group(2)) > 0
    assert float(conv.group(3)) == pytest.approx(float(conv.group(1)) / float(conv.group(2)), abs=0.01)
    assert "`semzoo bench --model tiny@stable" in text

    throughput = _section(text, "Throughput")
    whole, frame, planned, tiled = throughput[:4]
    assert whole[0].startswith("whole image 192x192 output")
    assert frame[0].startswith("default path: 80x64 uint16 frame, `enhance` defaults (whole, 1 request)")
    assert frame[4].startswith(">= 0.75")
    assert planned[0].startswith("tiled 512x512 output, memory-budget plan: 256 px tiles x 1, 1/request")
    assert tiled[0].startswith("tiled 512x512 output, 256 px tiles")
    for row in (whole, frame, planned, tiled):
        direct, served, ratio = (_positive(c) for c in row[1:4])
        assert 0.05 < ratio < 20  # a ratio of two positive speeds of the same work
        assert row[4].startswith(">= 0.")
    assert "images/s" in whole[1] and "GFLOP/s" in whole[2] and "Mpx/s" in tiled[1]
    lanczos = [r for r in throughput if r[0].startswith("floor: Lanczos")]
    assert len(lanczos) == 3 and all(_positive(r[1]) for r in lanczos)

    concurrency = _section(text, "Concurrent clients")
    assert [int(r[0]) for r in concurrency] == [1, 2]
    for clients, requests, rate, p50, p99 in concurrency:
        assert int(requests) == 2 * int(clients)
        assert _positive(rate) and _positive(p50) <= _positive(p99)

    memory = _section(text, "Peak memory")
    assert [r[0] for r in memory] == ["client (subprocess)", "server (`semzoo serve`)"]
    for _, peak, growth, multiple in memory:
        assert _positive(peak) >= float(growth) >= 0 and float(multiple) >= 0


def test_bench_refuses_existing_output_and_unknown_models(cli, bench_zoo, tmp_path):
    existing = tmp_path / "bench.md"
    existing.write_text("keep me")
    result = cli("bench", "--zoo", bench_zoo, "--model", "tiny", "--quick", "--out", existing)
    assert result.exit_code == 2 and "exists; use --overwrite" in result.output
    assert existing.read_text() == "keep me"
    result = cli("bench", "--zoo", bench_zoo, "--model", "nope", "--quick")
    assert result.exit_code == 2 and "error:" in result.output and "nope" in result.output
    result = cli("bench", "--zoo", bench_zoo, "--model", "../tiny", "--quick")
    assert result.exit_code == 2 and "invalid model" in result.output


@pytest.mark.slow
def test_untrained_stand_in_is_a_verified_version(tmp_path):
    from zoo.benchmark import untrained_zoo
    from zoo.registry.store import Zoo

    name, version = untrained_zoo(tmp_path / "zoo", preset="tiny")
    zoo = Zoo(tmp_path / "zoo")
    assert (name, version) == ("gold-on-carbon", 1)
    assert zoo.verify(name, version) == []
    card = zoo.card(name, version)
    assert card["training"]["preset"] == "tiny" and card["input_pixel_size_nm"] == 14.2
