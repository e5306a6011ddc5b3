"""Stored-predictions teachers: all we have of the model is a table of its past outputs.

Such a teacher is registered like the others (kind ``stored``) and its outputs are ingested
(:func:`kdstore.ingest.ingest_outputs` / ``ingest_votes``), which sets its fingerprint to a hash of
the data (``data:<blake2b>``). It cannot be run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kdstore.errors import TeacherError
from kdstore.teachers.spec import TensorSpec

if TYPE_CHECKING:
    from kdstore.store.core import Store


class StoredTeacher:
    """A teacher known only by its stored predictions.

    >>> import kdstore, pyarrow as pa
    >>> with kdstore.connect() as store:
    ...     _ = store.add_labels(["spam"])
    ...     store.add_examples(pa.table({"example_id": [1, 2], "split": ["train", "valid"]}))
    ...     t = StoredTeacher("old_filter", labels=["spam"], output_type="binary")
    ...     t.ingest(store, pa.table({"example_id": [1, 2], "label": ["spam", "spam"], "score": [0.9, 0.2]}))
    ...     store.teachers.info("old_filter").fingerprint.startswith("data:")
    2
    2
    True
    """

    kind = "stored"

    def __init__(
        self, name: str, *, labels: Sequence[str | int] = (), output_type: str = "multiclass", threshold: float | None = None
    ):
        self.name = name
        self.labels = tuple(labels)
        self.output_type = output_type
        self.threshold = threshold
        self.scores = "probabilities"
        self.input_map: dict[str, str | list[str]] | None = None

    def __repr__(self) -> str:
        return f"StoredTeacher({self.name!r}, output_type={self.output_type!r})"

    @property
    def uri(self) -> str | None:
        return None

    def signature(self) -> tuple[TensorSpec, ...]:
        return ()

    def input_type(self) -> str | None:
        return None

    def fingerprint(self) -> str | None:
        """None: the fingerprint of a stored teacher is set by ingest from its data."""
        return None

    def config(self) -> dict[str, Any]:
        return {}

    def open(self, *, threads: int = 1) -> Any:
        raise TeacherError(
            f"teacher {self.name!r} is a stored-predictions teacher: there is no model to run; "
            "ingest its outputs with store.ingest_outputs"
        )

    def ingest(self, store: Store, source: Any, **kwargs: Any) -> int:
        """Register this teacher (if needed) and replace its outputs with ``source``.

        Keyword arguments go to :func:`kdstore.ingest.ingest_outputs` (``form``, column names...).
        """
        store.teachers.add(self)
        if self.output_type == "embedding":
            return store.ingest_embeddings(self.name, source, **kwargs)
        return store.ingest_outputs(self.name, source, **kwargs)


__all__ = ["StoredTeacher"]
