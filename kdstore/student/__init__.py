"""The student: a NumPy MLP trained on the distillation set, exported to ONNX, served from Python and SQL.

Modules: :mod:`~kdstore.student.train` (the trainer), :mod:`~kdstore.student.export` (ONNX +
parity), :mod:`~kdstore.student.serve` (sessions, Arrow predictions, SQL functions),
:mod:`~kdstore.student.registry` (``kd.models``), :mod:`~kdstore.student.pipeline`
(``store.train_student``). Importing this package stays light (no onnx / onnxruntime).
"""

from __future__ import annotations

from kdstore.student.features import Embeddings, FeatureSpec
from kdstore.student.registry import Models, StudentModel
from kdstore.student.train import MLP, FitResult, Targets, TrainConfig, fit

__all__ = ["MLP", "Embeddings", "FeatureSpec", "FitResult", "Models", "StudentModel", "Targets", "TrainConfig", "fit"]
