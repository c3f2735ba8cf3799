"""Quantization: FP32 preparation (`prepare`), INC behind one boundary module (`inc`), and
calibration into a QDQ graph (`quantization`). May import: ir, frontend."""
