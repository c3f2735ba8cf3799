"""itexlab: INT8 quantization of TensorFlow models on CPU, partitioned and run with oneDNN Graph."""
