"""INT8 calibration: Q/DQ ONNX, TensorRT calibration cache, and the report of what INT8 costs."""
