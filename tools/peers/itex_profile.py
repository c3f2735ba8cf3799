"""ITEX INT8 under ONEDNN_VERBOSE: a marker, then `runs` timed INT8 calls (ITEX's own oneDNN prints them)."""
import os, sys, numpy as np
os.environ.setdefault("ITEX_TF_CONSTANT_FOLDING", "0")
sys.path.insert(0, os.environ.get("PEER_SCRIPTS", os.path.join(os.path.dirname(__file__), "../../../shared/peers")))
import tensorflow as tf
from models import build, frozen, calib, SHAPES
from timing import graph_fn
name, bs = sys.argv[1], int(sys.argv[2])
shape = SHAPES[name]
gd = frozen(build(name), shape)
from neural_compressor.tensorflow import StaticQuantConfig, quantize_model
class DL:
    batch_size = 4
    def __iter__(self):
        for x in calib(shape): yield x, np.zeros(len(x))
q = quantize_model(gd, StaticQuantConfig(weight_granularity="per_channel"), calib_dataloader=DL()).graph_def
i8 = graph_fn(q)
x = tf.constant(np.random.default_rng(3).random((bs,) + shape).astype("float32"))
for _ in range(3): i8(x)
runs = 5
print("VERBOSE START", flush=True)
for _ in range(runs): i8(x)
print("VERBOSE END", flush=True)
