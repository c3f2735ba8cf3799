import json

import keras
import numpy as np
import pytest

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


def test_quantize_writes_graphs_and_never_overwrites(model_files, tmp_path):
    out = tmp_path / "q"
    args = ["quantize", str(model_files / "model.keras"), "--calibration", str(model_files / "calib.npy"),
            "--calibration-batches", "2", "--out", str(out)]
    main(args)
    assert {p.name for p in out.iterdir()} == {"qdq.pb", "partitioned.pb", "plan.json"}
    # the QDQ graph written out can be inspected again without calibration data, and drawn
    main(["inspect", str(out / "qdq.pb"), "--svg", str(tmp_path / "plan.svg"), "--html", str(tmp_path / "plan.html")])
    assert "<svg" in (tmp_path / "plan.svg").read_text()
    assert "<h3>Partitions</h3>" in (tmp_path / "plan.html").read_text()
    with pytest.raises(SystemExit, match="not empty"):
        main(args)


def test_user_model_without_calibration_data_is_refused(model_files):
    with pytest.raises(SystemExit, match="--calibration"):
        main(["inspect", str(model_files / "model.keras")])
