"""The model's FLOPs counted two ways, its rate, and this CPU's plain convolution in float32 and bfloat16.

    python tools/model_vs_convolution.py [LR_EDGE]   (default 390; the bundled gold-on-carbon v2)

Prints TensorFlow's profiler count of the serving signature frozen at LR_EDGE x LR_EDGE, the
count by hand over the frozen graph's convolutions (2 x kh x kw x c_in x c_out per output
pixel), the six largest convolutions, the direct call's images/s and GFLOP/s (median of 7),
and one plain 64->64 3x3 convolution at 392x392 in float32 and bfloat16 (median of 9). See
docs/performance.md ("The model against the CPU").
"""
import sys, time, json, numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from zoo.benchmark.direct import DirectModel
H = int(sys.argv[1]) if len(sys.argv) > 1 else 390
m = DirectModel(str(__import__("pathlib").Path(__file__).resolve().parents[1] / "models" / "gold-on-carbon" / "2"))
prof = m.gflop_per_image(H, H)
@tf.function
def fixed(image): return m.function(image=image)
conc = fixed.get_concrete_function(tf.TensorSpec([1, H, H, 1], tf.float32))
frozen = convert_variables_to_constants_v2(conc)
g = frozen.graph
conv = 0.0; convs = []
for op in g.get_operations():
    if op.type in ("Conv2D", "Conv2DBackpropInput", "DepthwiseConv2dNative"):
        if op.type == "Conv2DBackpropInput":
            w = op.inputs[1].shape; out = op.outputs[0].shape; x = op.inputs[2].shape
            f = 2 * w[0] * w[1] * w[2] * w[3] * x[1] * x[2]
        else:
            w = op.inputs[1].shape; out = op.outputs[0].shape
            f = 2 * w[0] * w[1] * w[2] * w[3] * out[1] * out[2]
        conv += f; convs.append((op.type, tuple(w), tuple(out), f / 1e9))
print(json.dumps({"input": H, "profiler_gflop": prof, "conv_gflop_analytic": conv / 1e9, "n_conv": len(convs)}))
for c in sorted(convs, key=lambda c: -c[3])[:6]: print(c)
x = np.random.default_rng(0).standard_normal((1, H, H, 1)).astype(np.float32)
m(x); m(x)
ts = []
for _ in range(7):
    t = time.perf_counter(); m(x); ts.append(time.perf_counter() - t)
med = float(np.median(ts))
print(json.dumps({"direct_images_per_s": 1 / med, "direct_gflop_per_s_profiler": prof / med, "conv_gflop_per_s_model": conv / 1e9 / med, "times": ts}))
for dt in (tf.float32, tf.bfloat16):
    a = tf.cast(tf.random.normal((1, 392, 392, 64)), dt); k = tf.cast(tf.random.normal((3, 3, 64, 64)), dt)
    f = tf.function(lambda a, k: tf.nn.conv2d(a, k, 1, "SAME"))
    f(a, k); f(a, k)
    ts = []
    for _ in range(9):
        t = time.perf_counter(); f(a, k).numpy(); ts.append(time.perf_counter() - t)
    med = float(np.median(ts)); fl = 2 * 9 * 64 * 64 * 392 * 392 / 1e9
    print(json.dumps({"conv64": dt.name, "gflop_per_s": fl / med, "s": med}))
