"""Teachers: ONNX model files, HTTP-hosted models and stored predictions.

Every teacher kind follows the :class:`Teacher` protocol: a name, its labels (the global label of
each output column), an ``output_type``, an input :meth:`~Teacher.signature`, a
:meth:`~Teacher.fingerprint` of what produces its outputs, and :meth:`~Teacher.open` which returns
a :class:`TeacherSession` that maps feature arrays to output arrays. The store keeps teachers in
``kd.teachers`` (``store.teachers`` is the registry) and :func:`run_teachers` runs many of them over
a feature source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from kdstore.teachers.http import HttpTeacher
from kdstore.teachers.onnx import OnnxTeacher
from kdstore.teachers.registry import TeacherInfo, TeacherRegistry
from kdstore.teachers.run import RunReport, TeacherRun, run_teachers
from kdstore.teachers.spec import TensorSpec
from kdstore.teachers.stored import StoredTeacher


@runtime_checkable
class TeacherSession(Protocol):
    """A loaded teacher. ``run`` takes ``{input name: array}`` with one row per example and returns
    ``{tensor name: array}`` holding at least ``score_output`` and ``embedding_output`` (when set).
    It may be called from several threads at once."""

    score_output: str | None
    embedding_output: str | None

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


@runtime_checkable
class Teacher(Protocol):
    """What kdstore needs from a teacher (see :class:`OnnxTeacher`, :class:`HttpTeacher`,
    :class:`StoredTeacher`)."""

    name: str
    kind: str  # onnx | http | stored
    output_type: str  # binary | multiclass | multilabel | regression | embedding (| vote, stored only)
    labels: tuple[str | int, ...]
    scores: str  # probabilities | logits
    threshold: float | None
    input_map: dict[str, str | list[str]] | None

    @property
    def uri(self) -> str | None: ...

    def signature(self) -> tuple[TensorSpec, ...]: ...

    def input_type(self) -> str | None: ...

    def fingerprint(self) -> str | None: ...

    def config(self) -> dict[str, Any]: ...

    def open(self, *, threads: int = 1) -> TeacherSession: ...


__all__ = [
    "HttpTeacher",
    "OnnxTeacher",
    "RunReport",
    "StoredTeacher",
    "Teacher",
    "TeacherInfo",
    "TeacherRegistry",
    "TeacherRun",
    "TeacherSession",
    "TensorSpec",
    "run_teachers",
]
