"""The tutorials run top to bottom (short versions) and say what they should."""

import json
import pathlib

import pytest

papermill = pytest.importorskip("papermill", reason="notebook extras not installed (pip install -e '.[notebook]')")

NOTEBOOKS = pathlib.Path(__file__).parent.parent / "notebooks"


def run(name: str, tmp_path, **parameters) -> dict:
    result = tmp_path / f"{name}.json"
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                               parameters={**parameters, "result_path": str(result)}, kernel_name="python3",
                               progress_bar=False, cwd=str(tmp_path))
    return json.loads(result.read_text())


def test_alexnet_tutorial(tmp_path):
    r = run("alexnet", tmp_path, epochs=6, repeats=3)
    assert r["fp32_accuracy"] > 0.9                              # a trained model
    assert r["int8_accuracy"] >= r["fp32_accuracy"] - 0.01       # INT8 within 1 point
    assert r["fallback_ops"] == ["Identity"]
    assert r["switch_off_partitions"] == 0 and r["switch_off_same_decisions"] > 0.98
    assert r["speedup_batch64"] > 1.0
    assert not list(tmp_path.glob("nc_workspace"))               # INC's scratch stays out of the way


def test_inception_tutorial(tmp_path):
    r = run("inception_v3", tmp_path, epochs=1, train_limit=256, repeats=3)
    assert r["conv_in_partitions"] == 94 and r["concat_in_partitions"] == 15
    assert r["fp32_accuracy"] > 0.2                              # above chance (10%) after a short training
    assert r["int8_accuracy"] >= r["fp32_accuracy"] - 0.01
    assert any("ITEX_TF_CONSTANT_FOLDING=1" in reason for reason in r["folded_conv_reasons"])


def test_inspection_notebook(tmp_path):
    r = run("inspect_subgraphs", tmp_path, epochs=3)
    assert "Conv2D" in r["alexnet_biggest_partition_ops"] or "MatMul" in r["alexnet_biggest_partition_ops"]
    assert r["alexnet_biggest_partition_quantization_rows"] >= 2
    assert r["inception_int8_mac_share"] > 0.99 and r["inception_slowest_partition_ms"] > 0
