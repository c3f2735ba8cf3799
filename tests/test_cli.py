import json
import time

import keras
import numpy as np
import pytest

import itexlab
from itexlab.cli import main


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.MaxPooling2D(), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)])
    model.save(folder / "model.keras")
    np.save(folder / "calib.npy", np.random.default_rng(0).random((8, 12, 12, 3), np.float32))
    return folder


@pytest.mark.parametrize("command", ["bench", "inspect", "quantize"])
def test_model_help_names_every_built_in_model(command, capsys):
    """The help once listed four built-ins of seven (bert_base, efficientnet_b0, ... were missing)."""
    from itexlab.measure.workloads import BUILTIN

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in BUILTIN), text


def test_inspect_writes_the_plan_as_json(model_files, tmp_path, capsys):
    out = tmp_path / "plan.json"
    main(["inspect", str(model_files / "model.keras"), "--calibration", str(model_files / "calib.npy"),
          "--calibration-batches", "2", "--json", str(out)])
    plan = json.loads(out.read_text())
    assert plan["partitions"] and {"id", "nodes"} <= set(plan["partitions"][0])
    assert all({"name", "op", "reason"} == set(f) for f in plan["fallback"])
    conv_nodes = [n for p in plan["partitions"] for n in p["nodes"] if n["op"] == "Conv2D"]
    assert len(conv_nodes) == 2
    assert "oneDNN partitions" in capsys.readouterr().out


def test_quantize_saves_a_model_that_run_inspect_and_bench_take(model_files, tmp_path, capsys):
    out = tmp_path / "q"
    args = ["quantize", str(model_files / "model.keras"), "--calibration", str(model_files / "calib.npy"),
            "--calibration-batches", "2", "--out", str(out)]
    main(args)
    assert {p.name for p in out.iterdir()} == {"itexlab.json", "plan.json", "weights.npz", "fallback.pb", "qdq.pb"}
    x = np.load(model_files / "calib.npy")[:3]
    np.save(tmp_path / "x.npy", x)
    main(["run", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")])
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), itexlab.load(out)(x)[0])
    with pytest.raises(SystemExit, match="exists"):  # an output is not overwritten unless asked
        main(["run", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")])
    main(["inspect", str(out), "--svg", str(tmp_path / "plan.svg"), "--html", str(tmp_path / "plan.html")])
    assert "<svg" in (tmp_path / "plan.svg").read_text()
    assert "<h3>Partitions</h3>" in (tmp_path / "plan.html").read_text()
    main(["bench", str(out), "--batch", "1", "2", "--repeats", "2", "--json", str(tmp_path / "bench.json")])
    result = json.loads((tmp_path / "bench.json").read_text())
    assert {(r["system"], r["batch"]) for r in result["results"]} == {
        (s, b) for s in ("itexlab-int8", "tf-qdq", "tf-fp32") for b in (1, 2)}
    assert set(result["slower_than_fp32"]) <= {"q"}  # a verdict per batch where INT8 lost, if it did
    # the QDQ graph saved with it can be partitioned again without calibration data
    main(["inspect", str(out / "qdq.pb")])
    assert "oneDNN partitions" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not empty"):
        main(args)
    main(args + ["--force"])  # replaces the itexlab model it wrote
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="holds no itexlab model"):
        main(args[:-1] + [str(tmp_path / "mine"), "--force"])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_run_refuses_a_folder_without_a_model(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 12, 12, 3), np.float32))
    with pytest.raises(SystemExit, match="holds no itexlab model"):
        main(["run", str(tmp_path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")])


def test_user_model_without_calibration_data_is_refused(model_files):
    with pytest.raises(SystemExit, match="--calibration"):
        main(["inspect", str(model_files / "model.keras")])


def test_bench_takes_a_model_path_and_the_systems_to_compare(model_files, tmp_path, capsys):
    out = tmp_path / "new" / "folder"  # parents that do not exist yet are made
    main(["bench", str(model_files / "model.keras"), "--calibration", str(model_files / "calib.npy"),
          "--calibration-batches", "2", "--batch", "1", "2", "--repeats", "2", "--no-memory",
          "--systems", "tf-fp32", "--json", str(out / "bench.json"), "--markdown", str(out / "bench.md")])
    result = json.loads((out / "bench.json").read_text())
    assert {r["system"] for r in result["results"]} == {"tf-fp32", "itexlab-int8"}  # the subject always runs
    assert {r["batch"] for r in result["results"]} == {1, 2} and result["model"] == "model"
    assert result["cpu"]["onednn_isa"] and "oneDNN ISA" in (out / "bench.md").read_text()
    assert "| itexlab-int8 | 2 |" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["demo", "--models", "alexnet", "--json"], ["bench", "alexnet", "--json"],
                                     ["bench", "alexnet", "--markdown"], ["inspect", "alexnet", "--svg"],
                                     ["inspect", "alexnet", "--html"], ["inspect", "alexnet", "--json"]])
def test_output_paths_are_checked_before_any_work(model_files, tmp_path, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    start = time.perf_counter()
    with pytest.raises(SystemExit, match="a_file is a file, not a folder"):
        main([*command, str(blocker / "out.json")])
    with pytest.raises(SystemExit, match="it is a folder"):
        main([*command, str(tmp_path)])
    assert time.perf_counter() - start < 5  # refused at once: nothing was trained, quantized or measured


def test_quantize_refuses_an_out_that_is_a_file(model_files, tmp_path):
    target = tmp_path / "q"
    target.write_text("mine")
    with pytest.raises(SystemExit, match="it is a file"):
        main(["quantize", str(model_files / "model.keras"), "--calibration", str(model_files / "calib.npy"),
              "--out", str(target)])
    assert target.read_text() == "mine"


def test_unusable_calibration_files_are_refused_clearly(model_files, tmp_path):
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for path, message in ((tmp_path / "missing.npy", "does not exist"), (objects, "not a numeric .npy array")):
        with pytest.raises(SystemExit, match=message):
            main(["inspect", str(model_files / "model.keras"), "--calibration", str(path)])


@pytest.mark.parametrize("args, message", [
    (["bench", "alexnet", "--batch", "0"], "bench: argument --batch: '0' is not a positive integer"),
    (["bench", "alexnet", "--repeats", "0"], "bench: argument --repeats: '0' is not a positive integer"),
    (["bench", "alexnet", "--threads", "0"], "bench: argument --threads: '0' is not a positive integer"),
    (["demo", "--models", "nosuch"], "demo: argument --models: invalid choice: 'nosuch'"),
    (["inspect", "alexnet", "--keep-fp32", "conv("], "inspect: argument --keep-fp32: 'conv\\(' is not a regular"),
    (["inspect", "alexnet", "--json", "/proc/itexlab.json"], "under /proc, a virtual file system"),
    (["inspect", "alexnet", "--html", "/sys/kernel/itexlab/plan.html"], "under /sys, a virtual file system"),
    (["quantize", "alexnet", "--out", "/proc/itexlab-model"], "under /proc, a virtual file system"),
])
def test_bad_arguments_get_one_line_and_a_nonzero_exit_before_any_work(args, message, capsys):
    start = time.perf_counter()
    with pytest.raises(SystemExit, match=f"^itexlab: .*{message}") as refused:
        main(args)
    assert refused.value.code not in (0, None) and "\n" not in str(refused.value.code)
    assert capsys.readouterr().err == "" and time.perf_counter() - start < 5  # no usage block, no work


def test_run_writes_the_output_name_it_was_given(model_files, tmp_path, capsys):
    out = tmp_path / "q"
    main(["quantize", str(model_files / "model.keras"), "--calibration", str(model_files / "calib.npy"),
          "--calibration-batches", "2", "--out", str(out)])
    np.save(tmp_path / "x.npy", np.load(model_files / "calib.npy")[:2])
    main(["run", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.out")])
    assert (tmp_path / "y.out").is_file() and not (tmp_path / "y.out.npy").exists()
    assert "written to " + str(tmp_path / "y.out") in capsys.readouterr().out
    assert np.load(tmp_path / "y.out").shape == (2, 4)
    with pytest.raises(SystemExit, match="y.out exists \\(--force overwrites it\\)"):
        main(["run", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.out")])
