"""The INC shim reaches into INC 3.10 internals: these tests fail loudly when INC changes."""

import neural_compressor
import pytest

from itexlab.quant import inc


def test_inc_is_the_pinned_version():
    assert neural_compressor.__version__ == inc.SUPPORTED_INC_VERSION


def test_the_internals_the_shim_uses_still_exist():
    static_config, quantize_model, adaptor, tf_config = inc._inc()
    assert callable(adaptor.__dict__["_check_itex"])
    assert {"backend", "workspace_path"} <= set(tf_config.global_config)
    assert callable(tf_config.reset_global_config)
    assert hasattr(inc._graph_converter(), "CaptureOutputToFile")


def test_other_inc_versions_are_refused(monkeypatch):
    monkeypatch.setattr(neural_compressor, "__version__", "3.11")
    with pytest.raises(inc.IncVersionError, match="neural-compressor==3.10"):
        inc._inc()


def test_itex_mode_is_undone_after_the_call():
    _, _, adaptor, tf_config = inc._inc()
    check = adaptor.__dict__["_check_itex"]
    with inc._contained(itex_mode=True):
        assert tf_config.global_config["backend"] == "itex"
    assert tf_config.global_config["backend"] == "default"
    assert adaptor.__dict__["_check_itex"] is check


def test_calibration_progress_counts_every_batch_inc_takes():
    """INC asks for exactly calib_iteration batches and never for the next: the bar must still end full."""
    import io
    import itertools

    import numpy as np

    stream = io.StringIO()
    loader = inc._CalibrationLoader([[np.zeros((2, 3), np.float32)]] * 4, ["x"], stream)  # 4 batches of one input
    taken = list(itertools.islice(iter(loader), 4))  # as INC does: take 4, then let go of the iterator
    del taken
    assert "4/4" in stream.getvalue()
