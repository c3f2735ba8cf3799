"""itexlab INT8 (peer model) under ONEDNN_VERBOSE: a marker, then `runs` calls."""
import os, sys, numpy as np
sys.path.insert(0, os.environ.get("PEER_SCRIPTS", os.path.join(os.path.dirname(__file__), "../../../shared/peers")))
import itexlab
from models import build, calib, SHAPES
name, bs = sys.argv[1], int(sys.argv[2])
shape = SHAPES[name]
m = build(name)
cm = itexlab.CompiledModel(itexlab.make_plan(itexlab.quantize(m, np.concatenate(calib(shape)), progress=False).qdq))
x = np.random.default_rng(3).random((bs,) + shape).astype("float32")
for _ in range(3): cm(x)
print("VERBOSE START", flush=True)
for _ in range(5): cm(x)
print("VERBOSE END", flush=True)
