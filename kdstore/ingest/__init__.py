"""Validated ingest: labels, examples, gold, weak labels, teachers, outputs, embeddings, features.

Every public function here is one transaction: it either applies completely or raises (usually a
:class:`~kdstore.errors.SchemaError` naming the source, column and first offending row) and leaves
the store exactly as it was. Values and identifiers never go into SQL text unquoted.

Outputs are stored wide (``kd.scores``: one FLOAT[] per teacher x example, aligned with the
teacher's ``output_index``); ``kd.outputs`` is the long view. Modules: ``tables`` (labels,
examples, gold, weak), ``teachers`` (registration), ``outputs`` (scores, votes), ``features``
(embeddings, feature sources), ``_common`` (shared checks).
"""

from __future__ import annotations

from kdstore.ingest._common import SPLITS, Examples
from kdstore.ingest.features import feature_relation, ingest_embeddings, register_features
from kdstore.ingest.outputs import INSERT_ROWS, Appender, Fingerprint, ScoreWriter, ingest_outputs, ingest_votes
from kdstore.ingest.tables import add_examples, add_gold, add_labels, add_weak
from kdstore.ingest.teachers import (
    OUTPUT_TYPES,
    PROBABILITY_TYPES,
    TEACHER_KINDS,
    TeacherDef,
    add_teacher,
    add_vote_teachers,
    get_teacher,
)

__all__ = [
    "INSERT_ROWS",
    "OUTPUT_TYPES",
    "PROBABILITY_TYPES",
    "SPLITS",
    "TEACHER_KINDS",
    "Appender",
    "Examples",
    "Fingerprint",
    "ScoreWriter",
    "TeacherDef",
    "add_examples",
    "add_gold",
    "add_labels",
    "add_teacher",
    "add_vote_teachers",
    "add_weak",
    "feature_relation",
    "get_teacher",
    "ingest_embeddings",
    "ingest_outputs",
    "ingest_votes",
    "register_features",
]
