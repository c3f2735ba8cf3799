"""Peak memory of one system serving a model, measured in a fresh process per system.

The benchmark's own process holds every system at once (FP32, three INT8 paths, INC's leftovers),
so its resident size says nothing about any one of them. Each child process here imports the same
code (TensorFlow and itexlab), loads one model from a GraphDef file, builds one system, runs the
batch sizes in increasing order and reports its peak resident set after each: the number a user
sizing a server would look at.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

from ..ir import structure
from ..ir.graph import Graph
from .systems import ITEXLAB_INT8, TF_FP32

# The systems a fresh process can serve from a GraphDef file: the FP32 graph on TF, or the QDQ graph
# partitioned and run by itexlab.
SYSTEMS = (TF_FP32.name, ITEXLAB_INT8.name)


@dataclasses.dataclass(frozen=True)
class MemoryResult:
    system: str
    batch: int
    peak_mb: float       # peak resident set after running this batch (and every smaller one)
    loaded_mb: float     # peak after loading the model and building the system, before any run
    baseline_mb: float   # after importing TensorFlow and itexlab, before loading the model


def measure(graphs: dict[str, Graph], sample: np.ndarray, batch_sizes: tuple[int, ...]) -> list[MemoryResult]:
    """Peak memory per system of SYSTEMS, each given the graph it serves."""
    from ..frontend import tfgraph

    unknown = set(graphs) - set(SYSTEMS)
    if unknown:
        raise ValueError(f"no memory measurement for {sorted(unknown)}; systems: {SYSTEMS}")
    results = []
    with tempfile.TemporaryDirectory(prefix="itexlab-memory-") as tmp:
        sample_path = pathlib.Path(tmp, "sample.npz")  # one array per model input, in order
        first = next(iter(graphs.values()))
        np.savez(sample_path, *structure.flatten(first.inputs_nested, sample))
        for system, graph in graphs.items():
            model_path = pathlib.Path(tmp, f"{system}.pb")
            model_path.write_bytes(tfgraph.graph_def_from_graph(graph).SerializeToString())
            command = [sys.executable, "-m", "itexlab.measure.memory", system, str(model_path), str(sample_path),
                       *map(str, sorted(batch_sizes))]
            child = subprocess.run(command, capture_output=True, text=True)
            if child.returncode != 0:
                raise RuntimeError(f"measuring the memory of {system} failed:\n{child.stderr[-2000:]}")
            results += [MemoryResult(**row) for row in json.loads(child.stdout.strip().splitlines()[-1])]
    return results


def _peak_mb() -> float:
    """This process's peak resident set (VmHWM; getrusage's maxrss also counts the parent's)."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory is measured on Linux only")


def _child(system: str, model_path: str, sample_path: str, batch_sizes: list[int]) -> list[dict]:
    from ..frontend import tfgraph
    from ..lower.partition import make_plan
    from ..runtime.executor import CompiledModel
    from .timing import batch_of

    baseline = _peak_mb()
    graph = tfgraph.load(model_path)
    if system == TF_FP32.name:
        run = tfgraph.GraphFunction(graph, graph.inputs, graph.outputs)
    else:
        run = CompiledModel(make_plan(graph), check_speed=False)  # its FP32 graph would count
    del graph  # what stays is what the system itself keeps
    loaded = _peak_mb()
    with np.load(sample_path) as saved:
        sample = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    rows = []
    for size in batch_sizes:
        batch = batch_of(sample, size)
        run(batch)
        run(batch)
        rows.append(dataclasses.asdict(MemoryResult(system, size, _peak_mb(), loaded, baseline)))
    return rows


if __name__ == "__main__":
    name, model, sample_file, *sizes = sys.argv[1:]
    print(json.dumps(_child(name, model, sample_file, [int(s) for s in sizes])))
