"""Deployment export: ONNX graphs of zoo models, checked against PyTorch with onnxruntime."""

from .onnx import ExportResult, check_onnx, export_onnx, io_names

__all__ = ["ExportResult", "check_onnx", "export_onnx", "io_names"]
