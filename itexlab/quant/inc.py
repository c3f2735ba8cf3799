"""The Intel Neural Compressor boundary, pinned to INC 3.10.

INC writes QDQ graphs (the form oneDNN Graph partitioning needs) only when it believes Intel
Extension for TensorFlow is installed. We switch its global config to the "itex" backend and skip
its ITEX import check for the duration of one call. That reaches into INC internals, so this module
refuses any other INC version, and tests/test_inc.py fails loudly if the internals move.
INC's side effects (a ./nc_workspace/ directory, CUDA_VISIBLE_DEVICES) are kept out of the user's
working directory and environment.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
from typing import Callable, Iterator, Sequence, TextIO

import numpy as np

from ..config import QuantConfig
from ..errors import IncVersionError
from ..frontend.tfgraph import GraphDef

SUPPORTED_INC_VERSION = "3.10"


def _inc():
    import neural_compressor

    if neural_compressor.__version__ != SUPPORTED_INC_VERSION:
        raise IncVersionError(f"itexlab needs neural-compressor=={SUPPORTED_INC_VERSION}, found "
                              f"{neural_compressor.__version__}; the QDQ shim in itexlab/inc.py is "
                              "pinned to it")
    from neural_compressor.tensorflow import StaticQuantConfig, quantize_model
    from neural_compressor.tensorflow.algorithms.static_quant.tensorflow import TensorFlowAdaptor
    from neural_compressor.tensorflow.utils import TFConfig

    return StaticQuantConfig, quantize_model, TensorFlowAdaptor, TFConfig


def _graph_converter():
    from neural_compressor.tensorflow.quantization.utils import graph_converter

    return graph_converter


class _CaptureFd2:
    """INC collects calibration ranges from what TF's Print ops write to file descriptor 2, via
    `CaptureOutputToFile(path, stream=sys.stderr)` whose default stream was bound at import time.
    Under Jupyter or pytest that stream is not fd 2 and calibration finds no data ("list index
    out of range"). This stand-in always captures fd 2 itself."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        self._file = open(self.path, "w")
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.close()


@contextlib.contextmanager
def _contained(itex_mode: bool) -> Iterator[None]:
    """Run INC in a scratch directory, restore the environment, and (for QDQ) in itex mode."""
    _, _, adaptor, tf_config = _inc()
    converter = _graph_converter()
    saved_cwd, saved_cuda = os.getcwd(), os.environ.get("CUDA_VISIBLE_DEVICES")
    saved_check = adaptor.__dict__["_check_itex"]
    saved_capture = converter.CaptureOutputToFile
    with tempfile.TemporaryDirectory(prefix="itexlab-inc-") as scratch:
        os.chdir(scratch)
        converter.CaptureOutputToFile = _CaptureFd2
        try:
            if itex_mode:
                adaptor._check_itex = lambda self: None
                tf_config.global_config["backend"] = "itex"
            yield
        finally:
            converter.CaptureOutputToFile = saved_capture
            adaptor._check_itex = saved_check
            tf_config.reset_global_config()
            os.chdir(saved_cwd)
            if saved_cuda is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = saved_cuda


class _CalibrationLoader:
    """The loader INC iterates: (inputs, labels) pairs with a batch_size, reporting progress."""

    def __init__(self, batches: Sequence[list[np.ndarray]], names: Sequence[str], progress: TextIO | None):
        self.batches, self.names, self.progress = batches, list(names), progress
        self.batch_size = len(batches[0][0])

    def __iter__(self):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(self.batches), desc="calibrating", unit="batch", file=self.progress,
                   disable=self.progress is None)
        try:
            for batch in self.batches:
                bar.update()  # counted when handed out: INC stops asking after its last batch
                # several inputs: INC feeds a dict by placeholder name (its sampling loop, INC 3.10)
                inputs = batch[0] if len(batch) == 1 else dict(zip(self.names, batch))
                yield inputs, np.zeros(len(batch[0]), np.int64)
        finally:  # INC may stop before exhausting us
            bar.close()


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def _static_config(config: QuantConfig):
    static_config = _inc()[0]
    inc_config = static_config(weight_granularity=config.weight_granularity, act_algorithm=config.algorithm)
    for pattern in config.keep_fp32:
        inc_config.set_local(pattern, static_config(weight_dtype="fp32", act_dtype="fp32"))
    return inc_config


def autotune(graph_def: GraphDef, configs: Sequence[QuantConfig], batches: Sequence[list[np.ndarray]],
             names: Sequence[str], evaluate: Callable[[GraphDef], float], tolerable_loss: float,
             max_trials: int) -> None:
    """INC's accuracy-driven tuning over `configs`, in order, with INC's criterion (stop at the first
    whose metric is within `tolerable_loss`, relative, of the FP32 baseline, or after max_trials).
    `evaluate` is called with the FP32 graph first (INC's baseline), then with each trial's QDQ
    graph. INC drops its itex (QDQ) mode after every quantization, so it is set again after each
    evaluation."""
    from neural_compressor.common.base_tuning import TuningConfig
    from neural_compressor.tensorflow import autotune as inc_autotune

    tf_config = _inc()[3]

    def evaluate_in_qdq_mode(model) -> float:
        try:
            return evaluate(model.graph_def)
        finally:
            tf_config.global_config["backend"] = "itex"

    tuning = TuningConfig(config_set=[_static_config(c) for c in configs], tolerable_loss=tolerable_loss,
                          max_trials=max_trials)
    inc_logger = logging.getLogger("neural_compressor")
    saved_level = inc_logger.level
    inc_logger.setLevel(logging.ERROR)
    try:
        with _contained(itex_mode=True), contextlib.redirect_stdout(io.StringIO()):
            inc_autotune(graph_def, tuning, evaluate_in_qdq_mode, calib_dataloader=_CalibrationLoader(batches, names, None),
                         calib_iteration=len(batches))
    finally:
        inc_logger.setLevel(saved_level)


def quantize(graph_def: GraphDef, config: QuantConfig, batches: Sequence[list[np.ndarray]], names: Sequence[str], *,
             qdq: bool, progress: bool = True) -> GraphDef:
    """Static post-training quantization of a frozen FP32 graph with INC.

    qdq=True gives the QDQ graph (QuantizeV2 -> Dequantize around FP32 ops) for oneDNN Graph;
    qdq=False gives INC's default output, fused quantized TF ops (the "legacy" INT8 path).
    """
    _, quantize_model, _, _ = _inc()
    inc_config = _static_config(config)
    # Progress goes to a copy of the real stderr: INC redirects fd 2 while it calibrates.
    stream = os.fdopen(os.dup(sys.stderr.fileno() if _has_fileno(sys.stderr) else 2), "w") if progress else None
    inc_logger = logging.getLogger("neural_compressor")
    saved_level = inc_logger.level
    inc_logger.setLevel(logging.ERROR)  # INC logs every graph pass at INFO and prints its config
    try:
        with _contained(itex_mode=qdq), contextlib.redirect_stdout(io.StringIO()) as inc_output:
            model = quantize_model(graph_def, inc_config, calib_dataloader=_CalibrationLoader(batches, names, stream),
                                   calib_iteration=len(batches))
    finally:
        inc_logger.setLevel(saved_level)
        if stream:
            stream.close()
    if model is None:
        raise RuntimeError("INC could not quantize the model; its output ended with:\n"
                           + inc_output.getvalue()[-2000:])
    return model.graph_def
