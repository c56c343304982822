"""`semzoo bench`: how fast a zoo model runs directly, served, concurrently, and in how much memory.

One run (:func:`zoo.benchmark.run.run_benchmark`) measures on one zoo version:

- direct SavedModel inference (images/s at 780 x 780 output; the paper, de Haan et al. 2019,
  reports 3.66 images/s on a GTX 1080 Ti), the model's GFLOP per image and achieved GFLOP/s;
- the same through `semzoo serve` (a subprocess on loopback) + EnhanceClient: the ratio to
  direct for whole images and for a tiled 4096 x 4096 output;
- 1, 2 and 4 concurrent clients: throughput, p50/p99 latency;
- peak RSS of client and server while a 4096 x 4096 image becomes 8192 x 8192;
- Lanczos x2 as the floor.

:func:`zoo.benchmark.report.to_markdown` turns the result into the table `semzoo bench` writes.
It is never a timed test: tests run it on a tiny model and check the table's structure.
"""

from zoo.benchmark.run import BenchResult, BenchSizes, run_benchmark

__all__ = ["BenchResult", "BenchSizes", "run_benchmark", "untrained_zoo"]


def untrained_zoo(root, *, preset: str = "small", name: str = "gold-on-carbon", seed: int = 0) -> tuple[str, int]:
    """Publish an untrained ``preset`` generator as ``name`` into the zoo at ``root``.

    Speed does not depend on the weights, so before a trained model exists this gives the
    same architecture (and cost) to benchmark. Returns ``(name, version)``.
    """
    import keras

    from zoo.nets.generator import DIVISOR, build_generator, receptive_field_radius_lr
    from zoo.nets.presets import get_preset
    from zoo.registry.card import new_card
    from zoo.registry.export import tile_geometry
    from zoo.registry.publish import publish_generator

    config = get_preset(preset)
    keras.utils.set_random_seed(seed)
    generator = build_generator(config)
    card = new_card(
        name=name, sample_type="gold-on-carbon", input_pixel_size_nm=14.2, scale=2,
        tile=tile_geometry(generator, divisor=DIVISOR, radius=receptive_field_radius_lr(config)),
        training={"pairs": 0, "patches": 0, "simulated": True, "dataset_hash": "untrained",
                  "steps": 0, "preset": preset},
    )
    return publish_generator(generator, card, root)
