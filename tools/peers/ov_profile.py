"""OpenVINO INT8 per-layer counters (PERF_COUNT), summed by layer type and kernel, for one model and batch."""
import os, sys, tempfile, collections, numpy as np
sys.path.insert(0, os.environ.get("PEER_SCRIPTS", os.path.join(os.path.dirname(__file__), "../../../shared/peers")))
import openvino as ov, nncf
from models import build, calib, SHAPES
name, bs = sys.argv[1], int(sys.argv[2])
shape = SHAPES[name]
m = build(name)
d = tempfile.mkdtemp()
m.export(f"{d}/sm", verbose=False)
fp32 = ov.convert_model(f"{d}/sm")
int8 = nncf.quantize(fp32, nncf.Dataset([x[i:i+1] for x in calib(shape) for i in range(len(x))]))
int8.reshape([bs, *shape])
c = ov.Core().compile_model(int8, "CPU", {"INFERENCE_NUM_THREADS": str(os.cpu_count()), "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": "YES"})
req = c.create_infer_request()
x = np.random.default_rng(3).random((bs,) + shape).astype("float32")
totals = collections.Counter(); counts = collections.Counter()
runs = 20 if bs == 1 else 5
for _ in range(3): req.infer({0: x})
for _ in range(runs):
    req.infer({0: x})
    for p in req.profiling_info:
        if p.status == p.Status.EXECUTED:
            key = (p.node_type, p.exec_type)
            totals[key] += p.real_time.total_seconds() * 1e3 / runs
            counts[key] += 1
total = sum(totals.values())
print(f"OpenVINO {ov.__version__} {name} bs={bs}: {total:.3f} ms in executed layers per run")
for (t, e), ms in totals.most_common(12):
    print(f"  {ms:8.3f} ms  {counts[(t, e)] // runs:4d} x  {t} [{e}]")
