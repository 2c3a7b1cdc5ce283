"""Backends that run a model's step function: eager PyTorch, torch.compile, ONNX Runtime, TensorRT."""
