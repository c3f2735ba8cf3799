"""The systems itexlab compares, by name. A module of its own with no imports, so the command line
can list them before TensorFlow, oneDNN or numpy start their thread pools."""

SYSTEMS = {
    "tf-fp32": "the FP32 model on stock TensorFlow",
    "tf-int8-legacy": "INC's default INT8 output (fused quantized TF ops) on stock TensorFlow",
    "tf-qdq": "the QDQ graph on stock TensorFlow (quantization emulated in FP32)",
    "itexlab-int8": "the QDQ graph partitioned and run by itexlab's oneDNN Graph executor",
    "tflite-int8": "TFLite full-integer INT8 (XNNPACK), from the same Keras model",
}
# The subject of every comparison: always measured, never reported as unavailable.
SUBJECT = "itexlab-int8"
