"""itexlab INT8 (peer model, multi-input aware) under ONEDNN_VERBOSE: a marker, then `runs` calls."""
import os, sys, numpy as np
sys.path.insert(0, os.environ.get("PEER_SCRIPTS", os.path.join(os.path.dirname(__file__), "../../../shared/peers")))
import itexlab
from models import build, calib, sample, feed, INPUTS
name, bs = sys.argv[1], int(sys.argv[2])
names = [n for n, _, _ in INPUTS[name]]
cal = calib(name)
q = itexlab.quantize(build(name), feed(name, {n: np.concatenate([c[n] for c in cal]) for n in names}), progress=False)
cm = itexlab.CompiledModel(itexlab.make_plan(q.qdq), check_speed=False)
x = feed(name, sample(name, bs))
for _ in range(3): cm(x)
print("VERBOSE START", flush=True)
for _ in range(5): cm(x)
print("VERBOSE END", flush=True)
