"""The distill config: ``kdstore distill CONFIG.toml`` / ``store.distill(config)`` (see docs/distill.md).

:func:`parse_config` checks a parsed TOML mapping and :func:`load_config` a file, before anything is
written: a bad config raises a :class:`~kdstore.errors.SchemaError` naming the key (and the file).

>>> cfg = parse_config({"select": {"policies": ["experts"]}})
>>> (cfg.policies, cfg.student_name, cfg.trust_enabled)
(('experts',), 'student', False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdstore.errors import SchemaError

#: Top-level keys of a distill config and the keys each section accepts.
SECTIONS: dict[str, frozenset[str]] = {
    "data": frozenset({"labels", "examples", "gold"}),
    "features": frozenset({"name", "path", "id_column"}),
    "settings": frozenset(),  # any name of kd.settings (checked against DEFAULT_SETTINGS)
    "trust": frozenset({"enabled", "kind", "features", "folds", "seed", "rounds", "min_rows"}),
    "select": frozenset({"policies", "gold_weight", "task"}),
    "student": frozenset({"name", "threads", "candidates"}),  # + TrainConfig fields
    "export": frozenset({"path"}),
}
TOP_KEYS = frozenset({"store", "name", "teachers", *SECTIONS})
TEACHER_KEYS = frozenset({"name", "kind", "path", "url", "outputs", "form", "labels", "output_type", "output",
                          "scores", "threshold", "inputs"})
TEACHER_KINDS = ("onnx", "http", "stored")


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TeacherConfig:
    """One ``[[teachers]]`` entry (paths resolved against the config's folder)."""

    name: str
    kind: str
    raw: dict[str, Any]
    path: Path | None = None
    url: str | None = None
    outputs: Path | None = None


@dataclass(frozen=True, slots=True)
class DistillConfig:
    """A checked distill config; build it with :func:`parse_config` or :func:`load_config`.

    Attributes:
        raw: the config as given (TOML tables), used for the stage fingerprints.
        base: the folder relative paths are resolved against (the config file's folder).
        store: the ``store`` key (CLI only; ``store.distill`` ignores it).
    """

    raw: dict[str, Any]
    base: Path
    name: str = "distill"
    store: Path | None = None
    labels: tuple[str, ...] = ()
    examples: Path | None = None
    gold: Path | None = None
    features: str | None = None
    features_path: Path | None = None
    teachers: tuple[TeacherConfig, ...] = ()
    settings: dict[str, float] = field(default_factory=dict)
    trust_enabled: bool = False
    policies: tuple[str, ...] = ("trust",)
    gold_weight: float | None = None
    task: str | None = None
    student_name: str = "student"
    hyper: dict[str, Any] = field(default_factory=dict)
    export_path: Path | None = None

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        return dict(value) if isinstance(value, Mapping) else {}


def _err(key: str, msg: str, source: str) -> SchemaError:
    return SchemaError(f"config key {key!r}: {msg}", source=source, column=key)


def _path(base: Path, value: Any, key: str, source: str) -> Path:
    """A path given in the config: text, ``~`` expanded, relative to ``base``."""
    if not isinstance(value, str) or not value:
        raise _err(key, f"must be a file path (text), got {value!r}", source)
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _file(base: Path, value: Any, key: str, source: str) -> Path:
    """A config path to a file that must exist."""
    p = _path(base, value, key, source)
    if not p.exists():
        raise _err(key, f"file not found: {p}", source)
    return p


def _str_list(value: Any, key: str, source: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, (str, int)) for v in value):
        raise _err(key, f"must be a list of names, got {value!r}", source)
    return tuple(str(v) for v in value)


def parse_config(raw: Mapping[str, Any], *, base: str | Path | None = None, source: str = "config") -> DistillConfig:
    """Check a config mapping (a parsed TOML file) and resolve its paths; raise naming the bad key.

    Args:
        raw: the config (see docs/distill.md).
        base: folder that relative paths are resolved against (default: the current folder).
        source: how errors name the config (the file path for ``kdstore distill``).
    """
    from kdstore.select import Policy
    from kdstore.store.core import DEFAULT_SETTINGS
    from kdstore.student.pipeline import candidate_configs, make_config
    from kdstore.student.train import TrainConfig

    root = Path(base) if base is not None else Path.cwd()
    raw = {k: v for k, v in raw.items()}
    for key in raw:
        if key not in TOP_KEYS:
            raise _err(key, f"unknown key; known: {', '.join(sorted(TOP_KEYS))}", source)
    for sec, allowed in SECTIONS.items():
        value = raw.get(sec, {})
        if not isinstance(value, Mapping):
            raise _err(sec, f"must be a table ([{sec}]), got {type(value).__name__}", source)
        extra = set(TrainConfig.__dataclass_fields__) if sec == "student" else set()
        if sec != "settings":
            for key in value:
                if key not in allowed and key not in extra:
                    known = sorted(allowed | extra)
                    raise _err(f"{sec}.{key}", f"unknown key; known: {', '.join(known)}", source)
    name = raw.get("name", "distill")
    if not isinstance(name, str) or not name:
        raise _err("name", f"must be non-empty text, got {name!r}", source)
    store_path = _path(root, raw["store"], "store", source) if "store" in raw else None

    data = raw.get("data", {})
    labels = _str_list(data["labels"], "data.labels", source) if "labels" in data else ()
    examples = _file(root, data["examples"], "data.examples", source) if "examples" in data else None
    gold = _file(root, data["gold"], "data.gold", source) if "gold" in data else None

    feats = raw.get("features", {})
    features = feats.get("name")
    if features is not None and (not isinstance(features, str) or not features):
        raise _err("features.name", f"must be non-empty text, got {features!r}", source)
    features_path = _file(root, feats["path"], "features.path", source) if "path" in feats else None
    if features_path is not None and features is None:
        raise _err("features.name", "is required with features.path", source)

    teachers = []
    entries = raw.get("teachers", [])
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise _err("teachers", "must be an array of tables ([[teachers]])", source)
    seen: set[str] = set()
    for i, t in enumerate(entries):
        where = f"teachers[{i}]"
        if not isinstance(t, Mapping):
            raise _err(where, "must be a table", source)
        for key in t:
            if key not in TEACHER_KEYS:
                raise _err(f"{where}.{key}", f"unknown key; known: {', '.join(sorted(TEACHER_KEYS))}", source)
        kind = t.get("kind", "onnx" if "path" in t else "http" if "url" in t else "stored")
        if kind not in TEACHER_KINDS:
            raise _err(f"{where}.kind", f"unknown teacher kind {kind!r}; known: {', '.join(TEACHER_KINDS)}", source)
        path = _file(root, t["path"], f"{where}.path", source) if kind == "onnx" and "path" in t else None
        if kind == "onnx" and path is None:
            raise _err(f"{where}.path", "an onnx teacher needs the model file", source)
        url = t.get("url")
        if kind == "http" and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise _err(f"{where}.url", f"an http teacher needs an http(s) URL, got {url!r}", source)
        outputs = _file(root, t["outputs"], f"{where}.outputs", source) if "outputs" in t else None
        tname = t.get("name", path.stem if path is not None else None)
        if not isinstance(tname, str) or not tname:
            raise _err(f"{where}.name", f"must be non-empty text, got {tname!r}", source)
        if tname in seen:
            raise _err(f"{where}.name", f"teacher {tname!r} is listed twice", source)
        seen.add(tname)
        if "labels" in t:
            _str_list(t["labels"], f"{where}.labels", source)
        teachers.append(TeacherConfig(tname, str(kind), dict(t), path, url if kind == "http" else None, outputs))

    settings = dict(raw.get("settings", {}))
    for key, value in settings.items():
        if key not in DEFAULT_SETTINGS:
            raise _err(f"settings.{key}", f"unknown setting; known: {', '.join(sorted(DEFAULT_SETTINGS))}", source)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _err(f"settings.{key}", f"must be a finite number, got {value!r}", source)

    sel = raw.get("select", {})
    policies = _str_list(sel.get("policies", ["trust"]), "select.policies", source)
    if not policies:
        raise _err("select.policies", "give at least one policy", source)
    for p in policies:
        try:
            Policy(p)
        except ValueError:
            raise _err("select.policies", f"unknown policy {p!r}; known: {', '.join(x.value for x in Policy)}",
                       source) from None
    if len(set(policies)) != len(policies):
        raise _err("select.policies", "a policy is listed twice", source)
    gw = sel.get("gold_weight")
    if gw is not None and (isinstance(gw, bool) or not isinstance(gw, (int, float)) or not gw >= 0 or not math.isfinite(gw)):
        raise _err("select.gold_weight", f"must be a finite number >= 0, got {gw!r}", source)
    task = sel.get("task")
    if task is not None and task not in ("multiclass", "multilabel"):
        raise _err("select.task", f"must be multiclass or multilabel, got {task!r}", source)

    tr = raw.get("trust", {})
    enabled = tr.get("enabled", "trust" in policies)
    if not isinstance(enabled, bool):
        raise _err("trust.enabled", f"must be true or false, got {enabled!r}", source)
    if "trust" in policies and not enabled:
        raise _err("trust.enabled", "the trust policy needs trust models (enabled = true)", source)
    if tr.get("kind", "per_teacher") not in ("per_teacher", "router"):
        raise _err("trust.kind", f"must be per_teacher or router, got {tr.get('kind')!r}", source)
    for key in ("folds", "seed", "rounds", "min_rows"):
        if key in tr and (isinstance(tr[key], bool) or not isinstance(tr[key], int)):
            raise _err(f"trust.{key}", f"must be an integer, got {tr[key]!r}", source)
    if "features" in tr and not isinstance(tr["features"], (bool, str)):
        raise _err("trust.features", f"must be true/false or a feature source name, got {tr['features']!r}", source)

    st = dict(raw.get("student", {}))
    sname = st.pop("name", "student")
    if not isinstance(sname, str) or not sname:
        raise _err("student.name", f"must be non-empty text, got {sname!r}", source)
    threads = st.pop("threads", None)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise _err("student.threads", f"must be a positive integer, got {threads!r}", source)
    cands = st.pop("candidates", None)
    for d in (st, *(cands if isinstance(cands, list) else ())):
        if isinstance(d, dict) and isinstance(d.get("hidden"), list):
            d["hidden"] = tuple(d["hidden"])
    try:
        candidate_configs(make_config(None, st), cands)
    except (SchemaError, TypeError, ValueError) as e:
        col = getattr(e, "column", None)
        raise _err(f"student.{col}" if col else "student", str(e), source) from e
    hyper = {**st, **({"threads": threads} if threads is not None else {}),
             **({"candidates": cands} if cands is not None else {})}

    ex = raw.get("export", {})
    export_path = None
    if "path" in ex:
        export_path = _path(root, ex["path"], "export.path", source)
        if not export_path.parent.exists():
            raise _err("export.path", f"folder not found: {export_path.parent}", source)

    return DistillConfig(
        raw=_jsonable(raw), base=root, name=name, store=store_path, labels=labels, examples=examples, gold=gold,
        features=features, features_path=features_path, teachers=tuple(teachers), settings=settings,
        trust_enabled=enabled, policies=policies, gold_weight=None if gw is None else float(gw), task=task,
        student_name=sname, hyper=hyper, export_path=export_path,
    )


def load_config(path: str | Path) -> DistillConfig:
    """Read and check a TOML config file (relative paths are relative to its folder)."""
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise SchemaError("config file not found", source=str(path))
    try:
        raw = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SchemaError(f"not valid TOML: {e}", source=str(path)) from e
    return parse_config(raw, base=p.resolve().parent, source=str(path))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
