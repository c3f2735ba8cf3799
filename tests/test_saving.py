"""Saved models: written once, loaded in a fresh process without INC or re-partitioning, bit-identical;
damaged, foreign or newer folders refused with a clear error; nothing of the user's overwritten."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from test_partition_execute import X
from test_plan import branchy_plan, heavy_modules_loaded_by

import itexlab
from itexlab.errors import ModelError
from itexlab.frontend import tfgraph
from itexlab.ir import store
from itexlab.runtime.executor import CompiledModel


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    plan = branchy_plan()
    path = tmp_path_factory.mktemp("saved") / "model"
    itexlab.save(plan, path)
    return plan, path


def test_a_saved_model_loads_and_runs_bit_identically(saved):
    plan, path = saved
    assert {p.name for p in path.iterdir()} == {"itexlab.json", "plan.json", "weights.npz", "fallback.pb"}
    for before, after in zip(CompiledModel(plan)(X), itexlab.load(path)(X)):
        np.testing.assert_array_equal(before, after)


def test_a_fresh_process_runs_it_without_inc_or_partitioning(saved, tmp_path):
    plan, path = saved
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "expected.npy", CompiledModel(plan)(X)[0])
    code = ("import sys, numpy as np, itexlab\n"
            "import itexlab.lower.partition as partition\n"
            "partition.make_plan = None  # loading must not partition again\n"
            f"model = itexlab.load({str(path)!r})\n"
            f"got = model(np.load({str(tmp_path / 'x.npy')!r}))[0]\n"
            f"assert np.array_equal(got, np.load({str(tmp_path / 'expected.npy')!r}))\n"
            "print('inc loaded:', any(m.startswith('neural_compressor') for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "inc loaded: False"


def test_the_fallback_graph_def_holds_what_runs_on_tf(saved):
    plan, path = saved
    graph_def = tfgraph.GraphDef.FromString((path / "fallback.pb").read_bytes())
    assert {n.op for n in graph_def.node} >= {f.op for f in plan.fallback if f.op != "Identity"}
    assert all(n.name.startswith("segment_0/") for n in graph_def.node)


def test_a_saved_plan_draws_without_tensorflow_or_the_native_module(saved):
    _, path = saved
    assert heavy_modules_loaded_by(
        "from itexlab.ir import store\n"
        "from itexlab.report import tables, views\n"
        f"plan = store.read_plan({str(path)!r}, with_arrays=False)\n"
        "views.standalone_html(plan, expand=True); tables.quantization_frame(plan)") == []


def copy_of(path, tmp_path):
    return shutil.copytree(path, tmp_path / "copy")


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "weights.npz").write_bytes((p / "weights.npz").read_bytes()[:1000]), "truncated or changed"),
    (lambda p: (p / "plan.json").write_text((p / "plan.json").read_text().replace('"Convolution"', '"MatMul"', 1)),
     "truncated or changed"),
    (lambda p: (p / "fallback.pb").unlink(), "fallback.pb is missing"),
    (lambda p: (p / "itexlab.json").write_text("{"), "not valid JSON"),
    (lambda p: (p / "itexlab.json").unlink(), "holds no itexlab model"),
])
def test_a_damaged_folder_is_refused_by_name(saved, tmp_path, damage, message):
    path = copy_of(saved[1], tmp_path)
    damage(path)
    with pytest.raises(ModelError, match=message):
        itexlab.load(path)


def test_a_newer_or_unknown_format_is_refused(saved, tmp_path):
    path = copy_of(saved[1], tmp_path)
    manifest = json.loads((path / "itexlab.json").read_text())
    (path / "itexlab.json").write_text(json.dumps({**manifest, "version": store.VERSION + 1}))
    with pytest.raises(ModelError, match="newer itexlab"):
        itexlab.load(path)
    (path / "itexlab.json").write_text(json.dumps({**manifest, "format": "something-else"}))
    with pytest.raises(ModelError, match="not an itexlab model"):
        itexlab.load(path)
    with pytest.raises(ModelError, match="does not exist"):
        itexlab.load(tmp_path / "nowhere")


def test_saving_never_overwrites_what_the_user_has(saved, tmp_path):
    plan, path = saved
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        itexlab.save(plan, tmp_path / "mine")
    with pytest.raises(FileExistsError, match="not an itexlab model"):
        itexlab.save(plan, tmp_path / "mine", force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    again = copy_of(path, tmp_path)
    itexlab.save(plan, again, force=True)  # an itexlab model may be replaced when asked
    assert itexlab.load(again)(X)[0].shape == CompiledModel(plan)(X)[0].shape
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    (tmp_path / "plain").mkdir()
    assert again.stat().st_mode == (tmp_path / "plain").stat().st_mode  # as readable as any folder made here


def test_a_plan_with_8_bit_weights_is_refused_where_int8_pairs_would_overflow(tmp_path):
    """Saved on a VNNI machine, loaded on one without: 8-bit weights would overflow int16 sums."""
    plan = branchy_plan()
    plan.isa, plan.weight_bits = "AVX512_CORE_AMX", 8
    path = tmp_path / "vnni"
    store.write(path, plan, {}, "test")
    code = f"import itexlab\nitexlab.load({str(path)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert done.returncode != 0 and "ModelError" in done.stderr and "7-bit weights" in done.stderr
