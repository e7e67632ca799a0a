"""Writers of deployable models (TFLite, ONNX) from the quantized artifact, and their checks."""
