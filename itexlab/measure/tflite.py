"""The TFLite INT8 reference (XNNPACK), an optional extra: `pip install ai-edge-litert`.

Full-integer post-training quantization of the same Keras model with TF's converter, run by the
LiteRT interpreter. Only the benchmark uses it, for a side-by-side number.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np


def available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def int8_system(keras_model, calibration: np.ndarray, threads: int) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Convert to a full-integer TFLite model (float input/output) and return a batch runner.
    `keras_model`: a Keras model or a .keras file (TF's converter takes nothing else)."""
    if not available():
        raise ImportError("ai-edge-litert is not installed (pip install 'itexlab[tflite]')")
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(keras_model, (str, os.PathLike)) and str(keras_model).endswith(".keras"):
        keras_model = keras.models.load_model(keras_model, compile=False)
    if isinstance(keras_model, keras.Model) and len(keras_model.inputs) != 1:
        raise TypeError(f"the TFLite comparison here runs single-input models; this one has {len(keras_model.inputs)}")
    if not isinstance(keras_model, keras.Model):
        raise TypeError(f"TFLite's converter takes a Keras model, not {type(keras_model).__name__} "
                        f"({keras_model if isinstance(keras_model, (str, os.PathLike)) else 'in memory'})")
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    flatbuffer = converter.convert()
    interpreters: dict[int, Interpreter] = {}

    def run(*inputs) -> list[np.ndarray]:
        batch = np.asarray(inputs[0][0] if isinstance(inputs[0], (list, tuple)) else inputs[0])  # its one input
        interpreter = interpreters.get(len(batch))
        if interpreter is None:  # one interpreter per batch size, resized once
            interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, batch.shape)
            interpreter.allocate_tensors()
            interpreters[len(batch)] = interpreter
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
        interpreter.invoke()
        return [interpreter.get_tensor(interpreter.get_output_details()[0]["index"])]

    return run
