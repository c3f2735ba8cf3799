"""Saved models: written once, loaded in a fresh process without INC or re-partitioning, bit-identical;
damaged, foreign or newer folders refused with a clear error; nothing of the user's overwritten."""

import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_of
from test_partition_execute import X, conv_block, quantized_input
from test_plan import branchy_plan, heavy_modules_loaded_by

import itexlab
from itexlab.errors import ItexlabError, ModelError, TargetError, TargetExistsError
from itexlab.frontend import tfgraph
from itexlab.ir import store
from itexlab.lower.partition import make_plan
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
    return shutil.copytree(path, pathlib.Path(tmp_path) / "copy", symlinks=True)


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


def forge(path, edit_plan=None, edit_manifest=None, files=None):
    """Change a saved folder as its author could, checksums and all: the plan's JSON, the manifest,
    or the bytes of its files (name -> bytes, None to delete)."""
    for name, content in (files or {}).items():
        if content is None:
            (path / name).unlink()
        else:
            (path / name).write_bytes(content)
    if edit_plan:
        data = json.loads((path / "plan.json").read_text())
        edit_plan(data)
        (path / "plan.json").write_text(json.dumps(data))
    manifest = json.loads((path / "itexlab.json").read_text())
    manifest["files"] = {name: hashlib.sha256((path / name).read_bytes()).hexdigest()
                         for name in manifest["files"] if (path / name).is_file()}
    if edit_manifest:
        edit_manifest(manifest)
    (path / "itexlab.json").write_text(json.dumps(manifest))
    return path


def listing(*names, digest="0" * 64):
    return lambda manifest: manifest["files"].update({name: digest for name in names})


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/hostname", "sub/plan.json", ".hidden", "..", "",
                                  "itexlab.json", "x" * 300])
def test_a_manifest_can_name_no_file_outside_the_folder(saved, tmp_path, name):
    (tmp_path / "outside.txt").write_text("secret")
    path = forge(copy_of(saved[1], tmp_path), edit_manifest=listing(
        name, digest=hashlib.sha256(b"secret").hexdigest()))
    with pytest.raises(ModelError, match="not the name of a file inside the folder"):
        itexlab.load(path)


def test_files_outside_the_folder_are_refused_alike_whether_they_exist_or_not(saved, tmp_path):
    """A link inside the folder to a file outside is never followed: the message is the same for a
    target that exists (with the right checksum) and one that does not."""
    (tmp_path / "secret.txt").write_text("secret")
    messages = []
    for target in ("secret.txt", "nothing.txt"):
        path = copy_of(saved[1], tmp_path / f"with_{target}")
        (path / "extra.bin").symlink_to(tmp_path / target)
        forge(path, edit_manifest=listing("extra.bin", digest=hashlib.sha256(b"secret").hexdigest()))
        with pytest.raises(ModelError, match="extra.bin is not a plain file inside the folder") as refused:
            itexlab.load(path)
        messages.append(str(refused.value).replace(target, "TARGET").replace(str(path), "PATH"))
    assert messages[0] == messages[1] and "secret" not in messages[0]


def test_links_folders_pipes_and_oversized_files_are_refused(saved, tmp_path, monkeypatch):
    for kind in ("link", "folder", "pipe"):
        path = copy_of(saved[1], tmp_path / kind)
        (path / "fallback.pb").unlink()
        if kind == "link":
            (path / "fallback.pb").symlink_to(path / "plan.json")
        elif kind == "folder":
            (path / "fallback.pb").mkdir()
        else:
            os.mkfifo(path / "fallback.pb")  # opening it for reading must not wait for a writer
        with pytest.raises(ModelError, match="fallback.pb is not a plain file inside the folder"):
            itexlab.load(path)
    monkeypatch.setattr(store, "MAX_FILE_BYTES", 1000)
    with pytest.raises(ModelError, match=r"weights.npz is larger \(.* bytes\) than a saved model's weights.npz may be"):
        itexlab.load(saved[1])


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("files"), "lists no files"),
    (lambda m: m.update(files=["plan.json"]), "lists no files"),
    (lambda m: m["files"].pop("plan.json"), "does not list plan.json"),
    (lambda m: m["files"].pop("weights.npz"), "does not list weights.npz"),
    (lambda m: m["files"].update({"plan.json": "not a digest"}), "no SHA-256 checksum"),
    (lambda m: m.update(version=True), "unknown format version"),
])
def test_the_manifest_must_list_every_file_loading_reads(saved, tmp_path, edit, message):
    path = forge(copy_of(saved[1], tmp_path), edit_manifest=edit)
    with pytest.raises(ModelError, match=message):
        itexlab.load(path)


def test_forged_arrays_are_refused_before_numpy_allocates_them(saved, tmp_path):
    path = copy_of(saved[1], tmp_path)
    weights = (path / "weights.npz").read_bytes()
    first = weights.index(b"'shape': (") + len(b"'shape': (")
    huge = weights[:first] + b"999999999999," + weights[weights.index(b")", first):]
    with pytest.raises(ModelError, match="weights.npz cannot be read: .*header"):
        itexlab.load(forge(path, files={"weights.npz": huge}))
    objects = io.BytesIO()
    np.savez(objects, **{"constant:x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ModelError, match="weights.npz cannot be read: .*dtype object"):
        itexlab.load(forge(path, files={"weights.npz": objects.getvalue()}))


def test_a_string_constant_is_refused_at_save_not_pickled(tmp_path):
    def fn(x):
        label = tf.strings.length(tf.constant("kept as a string"))
        return conv_block(quantized_input(x)) * tf.cast(label, tf.float32)

    plan = make_plan(graph_of(fn, (None, 10, 10, 4)))
    with pytest.raises(ModelError, match="holds object values .*numbers only"):
        itexlab.save(plan, tmp_path / "m")
    assert not (tmp_path / "m").exists() and not list(tmp_path.iterdir())


def edit_node_op(op):
    """Make the plan's TF op (its cumulative sum, left to TF) another op, graph and fallback alike."""
    def edit(data):
        for node in data["source"]["nodes"] + data["fallback"]:
            if node.get("op") == "Cumsum":
                node["op"] = op
    return edit


@pytest.mark.parametrize("op", ["ReadFile", "WriteFile", "PyFunc", "EagerPyFunc", "FIFOQueueV2", "VarHandleOp",
                                "RandomUniform", "Frobnicate"])
def test_a_loaded_model_runs_no_file_io_python_queue_resource_or_random_op(saved, tmp_path, op):
    path = forge(copy_of(saved[1], tmp_path), edit_plan=edit_node_op(op))
    with pytest.raises(ModelError, match=f"runs {op} \\(.*only pure tensor ops.*trust=True"):
        itexlab.load(path)


def test_trust_lets_a_model_with_a_python_op_run(tmp_path):
    def fn(x):
        doubled = tf.numpy_function(lambda a: 2 * a, [x], tf.float32, stateful=False)
        return conv_block(quantized_input(tf.reshape(doubled, tf.shape(x))))

    plan = make_plan(graph_of(fn, (None, 10, 10, 4)))
    itexlab.save(plan, tmp_path / "python")
    with pytest.raises(ModelError, match="runs PyFunc"):
        itexlab.load(tmp_path / "python")
    for before, after in zip(CompiledModel(plan)(X), itexlab.load(tmp_path / "python", trust=True)(X)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("edit, message", [
    (lambda op: op["attrs"].update(groups=0), "groups: 0 is not an integer"),
    (lambda op: op["attrs"].update(strides=[0, 1]), "strides: 0 is not an integer"),
    (lambda op: op["attrs"].update(dilations=[1]), "1 values for 2 spatial"),
    (lambda op: op["attrs"].update(groups=3), "3 groups do not divide"),
    (lambda op: op["attrs"].update(pads_begin=[-1, 0]), "pads_begin"),
    (lambda op: op["attrs"].update(data_format="NHWC"), "data_format"),
    (lambda op: op["attrs"].update(frobnicate=1), "not a Convolution's"),
    (lambda op: op["attrs"].pop("strides"), "lacks \\['strides'\\]"),
    (lambda op: op.update(kind="Frobnicate"), "no op of kind 'Frobnicate'"),
    (lambda op: op.update(inputs=op["inputs"][:1]), "has 1 inputs"),
])
def test_onednn_never_sees_an_invalid_attribute(saved, tmp_path, edit, message):
    def edit_convolution(data):
        edit(next(op for p in data["partitions"] for op in p["ops"] if op["kind"] == "Convolution"))

    path = forge(copy_of(saved[1], tmp_path), edit_plan=edit_convolution)
    with pytest.raises(ModelError, match=message):
        itexlab.load(path)


@pytest.mark.parametrize("edit, message", [
    (lambda op: op["attrs"].update(scales=[-1.0]), "positive"),
    (lambda op: op["attrs"].update(scales=[0.1, 0.2]), "2 scales and 1 zero points"),
    (lambda op: op["attrs"].update(zps=[300]), "zps: 300"),
    (lambda op: op["attrs"].update(qtype="per_channel"), "per-channel quantization without an axis"),
    (lambda op: op["attrs"].update(scales="x"), "is not a list"),
])
def test_quantization_attributes_are_checked(saved, tmp_path, edit, message):
    def edit_quantize(data):
        edit(next(op for p in data["partitions"] for op in p["ops"] if op["kind"] == "Quantize"))

    with pytest.raises(ModelError, match=message):
        itexlab.load(forge(copy_of(saved[1], tmp_path), edit_plan=edit_quantize))


def test_weights_must_have_the_shape_and_type_the_plan_gives(saved, tmp_path):
    path = copy_of(saved[1], tmp_path)
    with np.load(path / "weights.npz") as arrays:
        arrays = dict(arrays)
    name = next(n for n, v in arrays.items() if n.startswith("constant:") and v.ndim == 4)
    for wrong in (arrays[name][:1], arrays[name].astype(np.float32)):
        buffer = io.BytesIO()
        np.savez(buffer, **{**arrays, name: wrong})
        with pytest.raises(ModelError, match="do not have the shape and type"):
            itexlab.load(forge(path, files={"weights.npz": buffer.getvalue()}))


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


def test_force_replaces_only_an_intact_itexlab_model_and_nothing_else(saved, tmp_path):
    plan, path = saved
    cases = {
        "a file of the user's beside the model": lambda p: (p / "notes.txt").write_text("mine"),
        "a model file edited since": lambda p: (p / "fallback.pb").write_bytes(b"edited"),
        "an itexlab.json that is no manifest": lambda p: (p / "itexlab.json").write_text("{}"),
        "a manifest listing a file of the user's": lambda p: forge(p, edit_manifest=listing("notes.txt")),
    }
    for case, change in cases.items():
        target = copy_of(path, tmp_path / case.replace(" ", "_").replace("'", ""))
        (target / "notes.txt").write_text("mine")
        change(target)
        before = {f.name: f.read_bytes() for f in target.iterdir()}
        with pytest.raises(TargetExistsError) as refused:
            itexlab.save(plan, target, force=True)
        assert isinstance(refused.value, (ItexlabError, FileExistsError)), case
        assert {f.name: f.read_bytes() for f in target.iterdir()} == before, case
    assert not [p for p in tmp_path.rglob(".*")]  # no staging folder left behind


def test_save_refuses_a_link_and_says_why_it_cannot_write(saved, tmp_path):
    plan, _ = saved
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(TargetError, match="symbolic link"):
        itexlab.save(plan, tmp_path / "link")
    with pytest.raises(TargetError, match="cannot write the model to /proc/itexlab-test/model") as refused:
        itexlab.save(plan, "/proc/itexlab-test/model")  # root may write anywhere a disk is: not there
    assert isinstance(refused.value, ItexlabError)


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
