"""torch → ONNX export of the FacePolicy networks, with a parity check and the model card."""
