"""The benchmark's markdown report: one table per question, numbers with their units."""

from __future__ import annotations

from zoo.benchmark.run import BenchResult

WHOLE_TARGET, TILED_TARGET, DEFAULT_PATH_TARGET, CONV_SHARE_TARGET = 0.90, 0.85, 0.75, 0.75


def _row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list]) -> list[str]:
    return [_row(*header), _row(*["---"] * len(header)), *(_row(*r) for r in rows)]


def _ok(ratio: float, target: float) -> str:
    return f">= {target:.2f} ({'met' if ratio >= target else 'NOT met'})"


def to_markdown(result: BenchResult, *, command: str = "") -> str:
    """The report as markdown: environment, throughput, concurrency, memory, notes."""
    env, w = result.environment, result.whole
    lines = [
        f"# semzoo bench: {result.model} version {result.version}",
        "",
        f"- command: `{command}`" if command else "- command: (library call)",
        f"- machine: {env.get('cpu')}, {env.get('cores')} cores, GPUs: {env.get('gpus')}, "
        f"AVX512-BF16: {'yes' if env.get('avx512_bf16') else 'no'}",
        f"- software: TensorFlow {env.get('tensorflow')}, Python {env.get('python')}",
        f"- {env.get('date_utc')}; 1-min load average {env.get('load_start', 0):.2f} at start, "
        f"{env.get('load_end', 0):.2f} at end (ratios come from alternating calls within this run)",
        f"- model cost: {w['gflop_per_image']:.2f} GFLOP per {w['output']}x{w['output']} output image "
        "(TensorFlow profiler float_operation() on the serving signature frozen at that shape; "
        "2 FLOP per multiply-add)",
        f"- the model's rate against this CPU's plain convolution: {w['direct_gflop_per_s']:.1f} GFLOP/s direct vs "
        f"{w['conv_gflop_per_s']:.1f} GFLOP/s for one 64->64 3x3 float32 convolution at {w['conv_size']}x{w['conv_size']} "
        f"= {w['conv_share']:.2f}, target {_ok(w['conv_share'], CONV_SHARE_TARGET)}",
        "",
        "## Throughput: direct SavedModel vs `semzoo serve` + EnhanceClient",
        "",
    ]
    rows = [[
        f"whole image {w['output']}x{w['output']} output (1 request, median of {w['rounds']})",
        f"{w['direct_images_per_s']:.3f} images/s ({w['direct_gflop_per_s']:.1f} GFLOP/s)",
        f"{w['served_images_per_s']:.3f} images/s ({w['served_gflop_per_s']:.1f} GFLOP/s)",
        f"{w['ratio']:.3f}", _ok(w["ratio"], WHOLE_TARGET),
    ]]
    f = result.frame
    if f:
        how = "whole, 1 request" if f["tiles"] == 1 else f"{f['tile']} px tiles x {f['tiles']}"
        rows.append([
            f"default path: {f['lr'][1]}x{f['lr'][0]} uint16 frame, `enhance` defaults ({how}) vs one direct "
            f"whole-image call (median of {f['rounds']})",
            f"{f['direct_images_per_s']:.3f} images/s", f"{f['served_images_per_s']:.3f} images/s",
            f"{f['ratio']:.3f}", _ok(f["ratio"], DEFAULT_PATH_TARGET),
        ])
    for t in result.tiled:
        chosen = "memory-budget plan: " if t.get("plan") else ""
        rows.append([
            f"tiled {t['output']}x{t['output']} output, {chosen}{t['tile']} px tiles x {t['tiles']}, {t['batch']}/request",
            f"{t['direct_mpx_per_s']:.3f} Mpx/s ({t['direct_s']:.1f} s)",
            f"{t['served_mpx_per_s']:.3f} Mpx/s ({t['served_s']:.1f} s)",
            f"{t['ratio']:.3f}", _ok(t["ratio"], TILED_TARGET),
        ])
    lz = result.lanczos
    rows.append([f"floor: Lanczos x2 (cv2 INTER_LANCZOS4), {lz['output']}x{lz['output']} output",
                 f"{lz['images_per_s']:.1f} images/s", "", "", ""])
    for t in result.tiled:
        rows.append([f"floor: Lanczos x2, {t['output']}x{t['output']} output",
                     f"{t['lanczos_mpx_per_s']:.1f} Mpx/s", "", "", ""])
    lines += _table(["measurement", "direct", "served", "served/direct", "target"], rows)
    lines += ["", f"## Concurrent clients (whole {w['output']}x{w['output']} images, one channel each)", ""]
    lines += _table(
        ["clients", "requests", "images/s", "p50 latency (s)", "p99 latency (s)"],
        [[c["clients"], c["requests"], f"{c['images_per_s']:.3f}", f"{c['p50_s']:.3f}", f"{c['p99_s']:.3f}"]
         for c in result.concurrency],
    )
    m = result.memory
    out = m["output_float32_mib"]
    lines += [
        "",
        f"## Peak memory: enhancing a {m['input']} image into {m['output']} "
        f"({m['tiles']} tiles of {m['tile']} px, {m['batch']}/request)",
        "",
        f"Image size = the output as float32 ({out:.0f} MiB). Growth = peak RSS (VmHWM) minus RSS "
        "just before the image was sent (client: image already in memory; server: a fresh `semzoo serve`, model loaded and warm).",
        "",
    ]
    lines += _table(
        ["process", "peak RSS (MiB)", "growth (MiB)", "growth / image size"],
        [
            ["client (subprocess)", f"{m['client_peak_mib']:.0f}", f"{m['client_growth_mib']:.0f}",
             f"{m['client_growth_mib'] / out:.2f}"],
            ["server (`semzoo serve`)", f"{m['server_peak_mib']:.0f}", f"{m['server_growth_mib']:.0f}",
             f"{m['server_growth_mib'] / out:.2f}"],
        ],
    )
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"
