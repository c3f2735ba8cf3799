"""Measurement: the systems compared (`systems`), timing and reports (`timing`), the benchmark
(`benchmark`), peak memory (`memory`), the INT8-floor probe (`probe`), TFLite's INT8 (`tflite`),
built-in workloads and data sets, and the notebook/main-job comparison (`compare`).
May import every stage below report."""
