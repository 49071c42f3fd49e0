"""[torch] ONNX export with the model spec in the metadata, and a parity check."""

from overfeat_edge.export.onnx import ExportReport, export_onnx

__all__ = ["ExportReport", "export_onnx"]
