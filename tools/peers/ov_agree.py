"""OpenVINO INT8 (NNCF) against TF FP32 on the inputs the other peers compare on (sample(name, 8,
seed=9)): the top-1 agreement line that ../shared/peers/ov_bench.py does not print. Run with the
python of $PEERS/lite, as rounds.sh does:
peer=openvino model=M top1_agree=... max_abs_diff=..."""
import os, sys, tempfile
import numpy as np
sys.path.insert(0, os.environ.get("PEER_SCRIPTS", os.path.join(os.path.dirname(__file__), "../../../shared/peers")))
import openvino as ov, nncf
from models import build, calib, sample, INPUTS
name = sys.argv[1]
specs = INPUTS[name]
m = build(name)
d = tempfile.mkdtemp()
m.export(f"{d}/sm", verbose=False)
def by_port(x): return [x[n] for n, _, _ in specs]  # the SavedModel's inputs, in the model's order
items = [[v[i:i+1] for v in by_port(x)] for x in calib(name) for i in range(len(next(iter(x.values()))))]
fp32 = ov.convert_model(f"{d}/sm")
order = [next(i for i, (n, _, _) in enumerate(specs) if n in port.get_names()) for port in fp32.inputs]
items = [[item[i] for i in order] for item in items]  # calibration in OpenVINO's input order too
int8 = nncf.quantize(fp32, nncf.Dataset(items))
x = sample(name, 8, seed=9)
int8.reshape({port.get_any_name(): [8, *specs[i][1]] for port, i in zip(int8.inputs, order)})
c = ov.Core().compile_model(int8, "CPU", {"INFERENCE_NUM_THREADS": str(os.cpu_count())})
# by name: OpenVINO orders a SavedModel's inputs its own way (BERT's: attention_mask, input_ids)
b = np.asarray(c.create_infer_request().infer({port.get_any_name(): x[port.get_any_name()] for port in c.inputs})[0])
a = np.asarray(m([x[n] for n, _, _ in specs] if len(specs) > 1 else x[specs[0][0]]))
print(f"peer=openvino model={name} top1_agree={np.mean(a.argmax(1) == b.argmax(1)):.3f} max_abs_diff={np.abs(a - b).max():.4g}")
