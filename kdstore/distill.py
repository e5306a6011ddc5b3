"""``store.distill(config)`` / ``kdstore distill CONFIG.toml``: the whole pipeline in one call.

Stages, in order (each recorded in ``kd.runs`` with ``kind = 'distill'``; see docs/distill.md):

``data`` (labels, examples, gold, features from files) -> ``teachers`` (register, run what is
missing) -> ``evaluate`` (experts per label on valid) -> ``trust`` (LightGBM trust models) ->
``select:<policy>`` (one per policy, ``kd.targets``) -> ``student:<policy>`` (one student per
policy, ``kd.models``) -> ``export`` (the student with the best *valid* score, to ONNX) ->
``score`` (teachers vs student per label on the test split; reporting only).

Every stage has a fingerprint: a hash of its config section and of what it reads (upstream
fingerprints, file hashes, row counts and content hashes of the tables it depends on). A stage
whose fingerprint equals the one recorded by its last successful run is SKIPPED; so re-running a
config does nothing, and changing one teacher file re-runs that teacher and what depends on the
teachers' outputs. The whole config is checked before anything is written: a bad config raises a
:class:`~kdstore.errors.SchemaError` naming the key (and the file) and leaves the store unchanged.

The test split is read only by the ``score`` stage (and by ``train_student`` for the test metrics
it stores after the model is fixed); the student is chosen among the policies on the valid split.
The config itself is parsed and checked in :mod:`kdstore.distill_config`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdstore._progress import Progress
from kdstore.distill_config import (
    DistillConfig,
    TeacherConfig,
    _err,
    _jsonable,
    load_config,
    parse_config,
)
from kdstore.errors import KdstoreError, SchemaError
from kdstore.sources import read_file

if TYPE_CHECKING:
    import pyarrow as pa

    from kdstore.store.core import Store
    from kdstore.teachers import Teacher

STAGE_ORDER = ("data", "teachers", "evaluate", "trust", "select", "student", "export", "score")


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StageResult:
    """One stage of a distill run: ``ran`` or ``skipped`` (fingerprint unchanged), and what it made."""

    stage: str
    status: str
    fingerprint: str
    seconds: float
    detail: str
    record: int  # run_id of the stage's record in kd.runs
    result: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class LabelScore:
    """One label of the summary table (test split): best teacher, naive average, student (F1)."""

    label: str
    support: int
    best_teacher: str | None
    best_teacher_f1: float | None
    naive_average_f1: float
    student_f1: float


@dataclass(frozen=True, slots=True)
class Summary:
    """Teachers vs student on the test split (``metric``: accuracy for multiclass, micro-F1 for multilabel).

    ``teachers`` maps each teacher to its overall metric used alone (multiclass: None for a teacher
    with one label, which cannot be a classifier on its own).
    """

    task: str
    metric: str
    examples: int
    labels: tuple[LabelScore, ...]
    teachers: dict[str, float | None]
    best_teacher: str | None
    best_teacher_score: float | None
    naive_average: float
    student: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "metric": self.metric, "examples": self.examples,
            "labels": [{f.name: getattr(r, f.name) for f in fields(LabelScore)} for r in self.labels],
            "teachers": self.teachers, "best_teacher": self.best_teacher, "best_teacher_score": self.best_teacher_score,
            "naive_average": self.naive_average, "student": self.student,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Summary:
        return cls(d["task"], d["metric"], int(d["examples"]), tuple(LabelScore(**r) for r in d["labels"]),
                   dict(d["teachers"]), d["best_teacher"], d["best_teacher_score"], float(d["naive_average"]),
                   float(d["student"]))

    def format(self) -> str:
        """The summary table as aligned text."""
        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"

        w = max([len(r.best_teacher or "-") for r in self.labels] + [len(self.best_teacher or "-"), 12])
        lw = max([len(r.label) for r in self.labels] + [len(self.metric) + 1])
        head = f"  {'label':<{lw}} {'support':>7}  {'best teacher':<{w}} {'F1':>6}  {'naive avg':>9}  {'student':>7}"
        lines = [f"Test split, {self.examples} examples (reporting only). Per label F1:", head, "  " + "-" * (len(head) - 2)]
        for r in self.labels:
            lines.append(f"  {r.label:<{lw}} {r.support:>7}  {r.best_teacher or '-':<{w}} {f(r.best_teacher_f1):>6}  "
                         f"{f(r.naive_average_f1):>9}  {f(r.student_f1):>7}")
        lines.append("  " + "-" * (len(head) - 2))
        lines.append(f"  {self.metric:<{lw}} {'overall':>7}  {self.best_teacher or '-':<{w}} {f(self.best_teacher_score):>6}  "
                     f"{f(self.naive_average):>9}  {f(self.student):>7}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class DistillReport:
    """What :func:`distill` did: every stage (ran/skipped), the chosen student, the summary."""

    name: str
    stages: tuple[StageResult, ...]
    policy: str
    model_id: int
    model_name: str
    run_ids: dict[str, int]
    valid_scores: dict[str, float | None]
    export_path: Path | None
    summary: Summary
    seconds: float

    def stage(self, name: str) -> StageResult:
        for s in self.stages:
            if s.stage == name:
                return s
        raise KeyError(name)

    @property
    def ran(self) -> list[str]:
        return [s.stage for s in self.stages if s.status == "ran"]

    def format_stages(self) -> str:
        w = max(len(s.stage) for s in self.stages)
        return "\n".join(f"  {s.stage:<{w}}  {s.status:<7} {s.seconds:6.1f} s  {s.detail}" for s in self.stages)


# ---------------------------------------------------------------------------------------------
# fingerprints and stage records (kd.runs, kind 'distill')
# ---------------------------------------------------------------------------------------------
def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([_jsonable(p) for p in parts], sort_keys=True).encode()).hexdigest()[:24]


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _state(store: Store, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
    row = store.one(sql, params)
    return [str(v) for v in row] if row else []


def _gold_state(store: Store, split: str) -> list[Any]:
    return _state(store, "SELECT count(*), bit_xor(hash(g.example_id, g.label_id)) FROM kd.gold g "
                         "JOIN kd.examples e USING (example_id) WHERE e.split = ?", [split])


def _examples_state(store: Store) -> list[Any]:
    return _state(store, "SELECT count(*), bit_xor(hash(example_id, split)) FROM kd.examples")


def _features_state(store: Store, name: str | None) -> list[Any]:
    if name is None:
        return []
    return _state(store, "SELECT kind, uri, columns FROM kd.feature_sources WHERE name = ?", [name])


def _teachers_state(store: Store, names: Sequence[str] | None) -> list[Any]:
    rows = store.execute(
        "SELECT t.name, t.kind, t.output_type, t.fingerprint, t.threshold, "
        "(SELECT count(*) FROM kd.scores s WHERE s.teacher_id = t.teacher_id), "
        "(SELECT list(label_id ORDER BY output_index) FROM kd.teacher_labels l WHERE l.teacher_id = t.teacher_id) "
        "FROM kd.teachers t ORDER BY t.name").fetchall()
    return [[str(v) for v in r] for r in rows if names is None or r[0] in names]


def _last_record(store: Store, pipeline: str, stage: str) -> tuple[int, dict[str, Any], dict[str, Any]] | None:
    row = store.one(
        "SELECT run_id, params, metrics FROM kd.runs WHERE kind = 'distill' AND params->>'pipeline' = ? "
        "AND params->>'stage' = ? ORDER BY run_id DESC LIMIT 1", [pipeline, stage])
    if row is None:
        return None
    return int(row[0]), json.loads(row[1]), json.loads(row[2]) if row[2] else {}


def _record(store: Store, pipeline: str, stage: str, fingerprint: str, inputs: Any, result: Mapping[str, Any]) -> int:
    from kdstore.select import _next_run_id

    with store.transaction():
        run_id = _next_run_id(store)
        store.run("INSERT INTO kd.runs (run_id, kind, params, metrics) VALUES (?, 'distill', ?, ?)",
                  [run_id, json.dumps({"pipeline": pipeline, "stage": stage, "fingerprint": fingerprint,
                                       "inputs": _jsonable(inputs)}), json.dumps(_jsonable(result))])
    return run_id


def stage_records(store: Store, pipeline: str = "distill") -> pa.Table:
    """Every stage record of a pipeline (run_id, stage, fingerprint, result, created_at), oldest first."""
    return store.query(
        "SELECT run_id, params->>'stage' AS stage, params->>'fingerprint' AS fingerprint, metrics AS result, created_at "
        "FROM kd.runs WHERE kind = 'distill' AND params->>'pipeline' = ? ORDER BY run_id", [pipeline])


class _Runner:
    """Runs stages: skip when the fingerprint matches the last record, else run and record."""

    def __init__(self, store: Store, cfg: DistillConfig, progress: bool | None, force: Sequence[str]):
        self.store, self.cfg, self.progress, self.force = store, cfg, progress, set(force)
        self.results: list[StageResult] = []

    def stage(self, name: str, inputs: Any, run: Callable[[Progress], tuple[dict[str, Any], str]],
              *, total: int | None = None, still_valid: Callable[[dict[str, Any]], bool] | None = None) -> StageResult:
        fp = _hash(name, inputs)
        last = _last_record(self.store, self.cfg.name, name)
        forced = name in self.force or name.split(":")[0] in self.force
        if last is not None and last[1].get("fingerprint") == fp and not forced and (still_valid is None or still_valid(last[2])):
            res = StageResult(name, "skipped", fp, 0.0, "inputs unchanged", last[0], last[2])
            with Progress(f"distill {name} (skipped)", total=1, unit="steps", enabled=self.progress) as bar:
                bar.update(1)
        else:
            t0 = time.perf_counter()
            with Progress(f"distill {name}", total=total, unit="steps", enabled=self.progress) as bar:
                result, detail = run(bar)
            record = _record(self.store, self.cfg.name, name, fp, inputs, result)
            res = StageResult(name, "ran", fp, time.perf_counter() - t0, detail, record, result)
        self.results.append(res)
        return res


# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------
def _build_teacher(t: TeacherConfig) -> Teacher:
    from kdstore.teachers import HttpTeacher, OnnxTeacher, StoredTeacher

    r = t.raw
    kw: dict[str, Any] = {"name": t.name, "labels": [str(x) for x in r.get("labels", [])],
                          "output_type": r.get("output_type", "multiclass")}
    if t.kind == "stored":
        return StoredTeacher(**kw)
    extra = {k: r[k] for k in ("output", "scores", "threshold", "inputs") if k in r}
    if t.kind == "onnx":
        assert t.path is not None
        return OnnxTeacher(t.path, **kw, **extra)
    assert t.url is not None
    return HttpTeacher(t.url, **kw, **extra)


def _check_teachers(store: Store, cfg: DistillConfig) -> dict[str, Teacher]:
    """Build every configured teacher (model files read and checked) before anything is written."""
    built: dict[str, Teacher] = {}
    for i, t in enumerate(cfg.teachers):
        where = f"teachers[{i}]"
        if t.kind == "stored" and t.outputs is None:
            if t.name not in store.teachers:
                raise _err(f"{where}.outputs", f"teacher {t.name!r} is not in the store: give its outputs file", "config")
            continue
        if "labels" not in t.raw and t.kind != "stored":
            raise _err(f"{where}.labels", "give the teacher's labels (its output columns, in order)", "config")
        try:
            teacher = _build_teacher(t)
            if t.kind == "onnx":
                teacher.fingerprint()
                teacher.checked()  # type: ignore[attr-defined]
        except KdstoreError as e:
            raise SchemaError(f"config key '{where}': {e}", source=str(t.path or t.url or t.name), column=where) from e
        built[t.name] = teacher
    return built


def _has_source(store: Store, name: str) -> bool:
    row = store.one("SELECT count(*) FROM kd.feature_sources WHERE name = ?", [name])
    return bool(row and row[0])


def distill(
    store: Store,
    config: DistillConfig | Mapping[str, Any] | str | Path,
    *,
    progress: bool | None = None,
    force: Sequence[str] = (),
    log: Callable[[str], object] | None = None,
) -> DistillReport:
    """Run the distill pipeline described by ``config`` on ``store`` (see the module docstring).

    Args:
        store: the store (read-write).
        config: a :class:`DistillConfig`, a mapping (parsed TOML; relative paths against the current
            folder), or the path of a TOML file.
        progress: a progress bar per stage on stderr (None: when stderr is a terminal).
        force: stage names (``teachers``, ``select``, ``student:trust`` ...) to run even if unchanged.
        log: called with one line per finished stage (e.g. ``print``).

    Returns:
        A :class:`DistillReport`; ``report.stage("teachers").status`` is ``ran`` or ``skipped``.
    """
    if store.read_only:
        raise KdstoreError(f"{store.path} is open read-only")
    cfg = config if isinstance(config, DistillConfig) else (
        load_config(config) if isinstance(config, (str, Path)) else parse_config(config))
    t_start = time.perf_counter()
    say = log or (lambda _m: None)
    # -- everything checked before the first write ---------------------------------------------
    built = _check_teachers(store, cfg)
    feature_name = cfg.features
    if feature_name is None:
        names = [str(r[0]) for r in store.execute("SELECT name FROM kd.feature_sources ORDER BY name").fetchall()]
        if len(names) != 1:
            raise _err("features.name", f"name the feature source (the store has {len(names)}: {', '.join(names) or 'none'})",
                       "config")
        feature_name = names[0]
    elif cfg.features_path is None and not _has_source(store, feature_name):
        raise _err("features.name", f"no feature source {feature_name!r} in the store: give features.path", "config")
    trust_feats = cfg.section("trust").get("features", True)
    trust_source = feature_name if trust_feats is True else (trust_feats or None)
    if isinstance(trust_source, str) and trust_source != feature_name and not _has_source(store, trust_source):
        raise _err("trust.features", f"no feature source {trust_source!r} in the store", "config")
    file_tables: dict[str, pa.Table] = {}
    for key, p in (("data.examples", cfg.examples), ("data.gold", cfg.gold), ("features.path", cfg.features_path)):
        if p is not None:
            try:
                file_tables[key] = read_file(p)
            except SchemaError as e:
                raise _err(key, str(e), str(p)) from e

    runner = _Runner(store, cfg, progress, force)
    current = store.settings.to_dict()
    if any(current.get(k) != float(v) for k, v in cfg.settings.items()):
        store.settings.update(cfg.settings)  # the stages' fingerprints include every setting

    def done(r: StageResult) -> StageResult:
        say(f"  {r.stage:<22} {r.status:<7} {r.seconds:6.1f} s  {r.detail}")
        return r

    # -- data -----------------------------------------------------------------------------------
    data_inputs = {"section": cfg.section("data"), "features": cfg.section("features"),
                   "files": {k: _file_hash(p) for k, p in (("examples", cfg.examples), ("gold", cfg.gold),
                                                           ("features", cfg.features_path)) if p is not None}}

    def run_data(bar: Progress) -> tuple[dict[str, Any], str]:
        out: dict[str, Any] = {}
        with store.transaction():
            if cfg.labels:
                store.add_labels(list(cfg.labels))
            bar.update(1)
            if "data.examples" in file_tables:
                out["examples"] = store.add_examples(file_tables["data.examples"], progress=False)
            bar.update(1)
            if "data.gold" in file_tables:
                out["gold"] = store.add_gold(file_tables["data.gold"], progress=False)
            bar.update(1)
            if "features.path" in file_tables:
                fc = cfg.section("features")
                store.register_features(feature_name, file_tables["features.path"], replace=True,
                                        id_column=fc.get("id_column", "example_id"), progress=False)
                out["features"] = file_tables["features.path"].num_rows
            bar.update(1)
        return out, ", ".join(f"{k} {v:,}" for k, v in out.items()) or "nothing to load"

    done(runner.stage("data", data_inputs, run_data, total=4))
    file_tables.clear()
    settings = store.settings.to_dict()
    valid_gold = _gold_state(store, "valid")
    feats = _features_state(store, feature_name)

    # -- teachers -------------------------------------------------------------------------------
    configured = [t.name for t in cfg.teachers]
    teacher_inputs = {
        "teachers": [{"config": t.raw, "fingerprint": built[t.name].fingerprint() if t.name in built else None,
                      "outputs": _file_hash(t.outputs) if t.outputs is not None else None} for t in cfg.teachers],
        "examples": _examples_state(store), "features": feats,
    }

    def run_teachers(bar: Progress) -> tuple[dict[str, Any], str]:
        reg = store.teachers
        to_run: list[str] = []
        for t in cfg.teachers:
            teacher = built.get(t.name)
            if teacher is None:
                bar.update(1)
                continue
            if t.kind == "stored":
                assert t.outputs is not None
                teacher.ingest(store, read_file(t.outputs), form=t.raw.get("form", "long"))  # type: ignore[attr-defined]
            else:
                current = reg.info(t.name) if t.name in reg else None
                if current is None or current.fingerprint != teacher.fingerprint() or current.kind != teacher.kind:
                    reg.add(teacher, replace=True)
                to_run.append(t.name)
            bar.update(1)
        ran: list[str] = []
        skipped: list[str] = []
        if to_run:
            rep = store.run_teachers(to_run, features=feature_name, progress=False)
            ran = [r.name for r in rep.runs if r.status == "ran"]
            skipped = [r.name for r in rep.runs if r.status == "skipped"]
        stored = [t.name for t in cfg.teachers if t.kind == "stored"]
        return ({"ran": ran, "skipped": skipped, "stored": stored, "state": _teachers_state(store, configured or None)},
                f"{len(ran)} run, {len(skipped)} already stored" + (f", {len(stored)} stored" if stored else ""))

    def outputs_alive(result: dict[str, Any]) -> bool:  # outputs deleted or changed since: run again
        return bool(result.get("state") == _teachers_state(store, configured or None))

    done(runner.stage("teachers", teacher_inputs, run_teachers, total=len(cfg.teachers), still_valid=outputs_alive))
    tstate = _teachers_state(store, None)
    base = {"teachers": tstate, "valid_gold": valid_gold, "examples": _examples_state(store)}

    # -- evaluate -------------------------------------------------------------------------------
    def run_evaluate(bar: Progress) -> tuple[dict[str, Any], str]:
        experts = store.evaluate.experts()
        bar.update(1)
        out: dict[str, Any] = {"experts": {e.label: list(e.experts) for e in experts},
                               "labels_without_expert": [e.label for e in experts if e.best is None]}
        n = sum(1 for e in experts if e.experts)
        return out, f"{n} labels with an expert, {len(out['labels_without_expert'])} without"

    done(runner.stage("evaluate", {**base, "settings": settings}, run_evaluate, total=1))

    # -- trust ----------------------------------------------------------------------------------
    trust_fp = None
    if cfg.trust_enabled:
        tsec = cfg.section("trust")
        trust_inputs = {**base, "settings": settings, "section": tsec, "features": _features_state(store, trust_source)}

        def run_trust(bar: Progress) -> tuple[dict[str, Any], str]:
            res = store.fit_trust(kind=tsec.get("kind", "per_teacher"), feature_source=trust_source,
                                  folds=tsec.get("folds", 5), seed=tsec.get("seed", 0), rounds=tsec.get("rounds", 100),
                                  min_rows=tsec.get("min_rows", 20))
            bar.update(1)
            return {"run_id": int(res.run_id)}, f"trust run {res.run_id}"

        def trust_alive(result: dict[str, Any]) -> bool:
            row = store.one("SELECT count(*) FROM kd.trust")
            return bool(row and row[0])

        trust_fp = done(runner.stage("trust", trust_inputs, run_trust, total=1, still_valid=trust_alive)).fingerprint

    # -- select, one run per policy -----------------------------------------------------------------
    def run_alive(result: dict[str, Any]) -> bool:
        row = store.one("SELECT count(*) FROM kd.runs WHERE run_id = ? AND kind = 'select'", [result.get("run_id")])
        return bool(row and row[0])

    def model_alive(result: dict[str, Any]) -> bool:
        row = store.one("SELECT count(*) FROM kd.models WHERE model_id = ? AND name = ?",
                        [result.get("model_id"), result.get("name")])
        return bool(row and row[0])

    select_fps: dict[str, str] = {}
    run_ids: dict[str, int] = {}
    for policy in cfg.policies:
        def run_select(bar: Progress, policy: str = policy) -> tuple[dict[str, Any], str]:
            from kdstore.select import select

            r = select(store, policy, gold_weight=cfg.gold_weight, task=cfg.task)
            bar.update(1)
            cov = r.metrics.get("coverage")
            return ({"run_id": r.run_id, "task": r.task, **r.metrics},
                    f"run {r.run_id}: {r.metrics['targets']:,} targets, coverage {cov:.3f}" if cov is not None
                    else f"run {r.run_id}: {r.metrics['targets']:,} targets")

        sel_inputs = {**base, "settings": settings, "policy": policy, "gold_weight": cfg.gold_weight, "task": cfg.task,
                      "trust": trust_fp if policy == "trust" else None}
        res = done(runner.stage(f"select:{policy}", sel_inputs, run_select, total=1, still_valid=run_alive))
        select_fps[policy], run_ids[policy] = res.fingerprint, int(res.result["run_id"])

    # -- student, one per policy ----------------------------------------------------------------
    students: dict[str, dict[str, Any]] = {}
    multi = len(cfg.policies) > 1
    for policy in cfg.policies:
        mname = f"{cfg.student_name}_{policy}" if multi else cfg.student_name

        def run_student(bar: Progress, policy: str = policy, mname: str = mname) -> tuple[dict[str, Any], str]:
            hyper = dict(cfg.hyper)
            threads = hyper.pop("threads", "auto")
            mid = store.train_student(run_ids[policy], features=feature_name, name=mname, replace=True,
                                      progress=False, threads=threads, **hyper)
            bar.update(1)
            m = store.models.load(mid)
            valid = m.metrics.get("valid", {})
            score = valid.get("accuracy") if m.task == "multiclass" else valid.get("micro_f1")
            return ({"model_id": mid, "name": mname, "sha256": m.sha256 or m.params.get("onnx_sha256"),
                     "valid_metric": score, "valid_source": valid.get("source"), "task": m.task},
                    f"model {mid} ({mname}): valid {'accuracy' if m.task == 'multiclass' else 'micro-F1'} "
                    + ("-" if score is None else f"{score:.3f}"))

        st_inputs = {"select": select_fps[policy], "features": feats, "hyper": cfg.hyper, "name": mname,
                     "valid_gold": valid_gold}
        students[policy] = done(runner.stage(f"student:{policy}", st_inputs, run_student, total=1,
                                             still_valid=model_alive)).result

    # the student: the best valid score (ties: the first policy listed)
    valid_scores = {p: (None if s.get("valid_metric") is None else float(s["valid_metric"])) for p, s in students.items()}
    chosen = max(cfg.policies, key=lambda p: (valid_scores[p] if valid_scores[p] is not None else -1.0,
                                              -cfg.policies.index(p)))
    model = store.models.load(int(students[chosen]["model_id"]))
    sha = model.sha256

    # -- export ---------------------------------------------------------------------------------
    export_path = cfg.export_path
    if export_path is not None:
        path = export_path

        def run_export(bar: Progress) -> tuple[dict[str, Any], str]:
            store.models.export(model.model_id, path)
            bar.update(1)
            return {"path": str(path), "model_id": model.model_id, "sha256": sha, "bytes": len(model.onnx)}, \
                f"{model.name} -> {path} ({len(model.onnx):,} bytes)"

        def file_alive(result: dict[str, Any]) -> bool:
            return path.is_file() and _file_hash(path) == sha

        done(runner.stage("export", {"sha256": sha, "path": str(path)}, run_export, total=1, still_valid=file_alive))

    # -- score (test split: reporting only) ----------------------------------------------------------
    def run_score(bar: Progress) -> tuple[dict[str, Any], str]:
        s = score_test_split(store, model.model_id)
        bar.update(1)
        return {**s.to_dict(), "model_id": model.model_id}, (f"test {s.metric}: student {s.student:.3f}, best teacher "
                             f"{'-' if s.best_teacher_score is None else f'{s.best_teacher_score:.3f}'}, naive average {s.naive_average:.3f}")

    score_inputs = {"model": sha, "teachers": tstate, "test_gold": _gold_state(store, "test"),
                    "examples": _examples_state(store), "threshold": settings.get("threshold")}
    sc = done(runner.stage("score", score_inputs, run_score, total=1))
    return DistillReport(
        name=cfg.name, stages=tuple(runner.results), policy=chosen, model_id=model.model_id, model_name=model.name,
        run_ids=run_ids, valid_scores=valid_scores, export_path=export_path, summary=Summary.from_dict(sc.result),
        seconds=time.perf_counter() - t_start,
    )


# ---------------------------------------------------------------------------------------------
# the test-split summary (reporting only)
# ---------------------------------------------------------------------------------------------
def _f1(pred: np.ndarray, true: np.ndarray) -> float:
    """F1 of boolean predictions against boolean truth (any shape; 0 when both are empty)."""
    tp = float(np.sum(pred & true))
    denom = float(np.sum(pred) + np.sum(true))
    return 2 * tp / denom if denom else 0.0


def score_test_split(store: Store, model: int | str) -> Summary:
    """Teachers, their naive average and a student on the test split, in NumPy from the store.

    Reporting only: the test gold is read here and nowhere a choice is made. Per label: F1 of each
    teacher's decisions (binary/multilabel: score >= its threshold; multiclass/vote: its argmax; an
    abstain is a negative), of the naive average (mean score per label over the teachers with an
    opinion; multiclass: argmax, multilabel: >= threshold) and of the student. Overall: accuracy
    (multiclass task; a teacher used alone — only teachers with several labels) or micro-F1.
    """
    m = store.models.load(model)
    task = m.task
    labels = [(int(i), str(n)) for i, n in store.execute("SELECT label_id, name FROM kd.labels ORDER BY label_id").fetchall()]
    col = {lid: j for j, (lid, _) in enumerate(labels)}
    ids = np.asarray(store.query("SELECT example_id FROM kd.examples WHERE split = 'test' ORDER BY example_id")
                     .column("example_id").to_numpy(), np.int64)
    gold = store.query("SELECT g.example_id, g.label_id FROM kd.gold g JOIN kd.examples e USING (example_id) "
                       "WHERE e.split = 'test'")
    Y = np.zeros((ids.size, len(labels)), bool)
    Y[np.searchsorted(ids, gold.column("example_id").to_numpy()), [col[int(x)] for x in gold.column("label_id").to_pylist()]] = True
    if task == "multiclass":  # score on the examples with exactly one gold label
        keep = Y.sum(axis=1) == 1
        ids, Y = ids[keep], Y[keep]
    n, L = Y.shape
    threshold = float(store.settings["threshold"])
    total, count = np.zeros((n, L)), np.zeros((n, L))
    per_label: dict[int, list[tuple[str, float]]] = {j: [] for j in range(L)}
    teacher_overall: dict[str, float | None] = {}
    trows = store.execute("SELECT teacher_id, name, output_type, threshold FROM kd.teachers "
                          "WHERE output_type IN ('binary', 'multiclass', 'multilabel', 'vote') ORDER BY teacher_id").fetchall()
    for tid, name, otype, tthr in trows:
        cols = [col[int(r[0])] for r in store.execute(
            "SELECT label_id FROM kd.teacher_labels WHERE teacher_id = ? ORDER BY output_index", [tid]).fetchall()]
        if not cols:
            continue
        sc = store.query("SELECT s.example_id, s.scores FROM kd.scores s JOIN kd.examples e USING (example_id) "
                         "WHERE s.teacher_id = ? AND e.split = 'test'", [tid])
        mat = np.full((n, len(cols)), np.nan)
        sid = np.asarray(sc.column("example_id").to_numpy(), np.int64)
        pos = np.searchsorted(ids, sid)
        ok = (pos < n) & (ids[np.minimum(pos, n - 1)] == sid) if n else np.zeros(sid.size, bool)
        vals = sc.column("scores").to_pylist()
        for i in np.flatnonzero(ok):
            mat[pos[i]] = [np.nan if v is None else v for v in vals[i]]
        have = ~np.isnan(mat)
        total[:, cols] += np.where(have, mat, 0.0)
        count[:, cols] += have
        if otype in ("multiclass", "vote"):
            answered = have.any(axis=1)
            arg = np.argmax(np.where(have, mat, -np.inf), axis=1)
            dec = np.zeros((n, len(cols)), bool)
            dec[np.flatnonzero(answered), arg[answered]] = True
        else:
            dec = have & (mat >= (threshold if tthr is None else float(tthr)))
        for k, j in enumerate(cols):
            per_label[j].append((str(name), _f1(dec[:, k], Y[:, j])))
        full = np.zeros((n, L), bool)
        full[:, cols] = dec
        if task == "multiclass":
            teacher_overall[str(name)] = float(np.mean(full[np.arange(n), Y.argmax(axis=1)] & (full.sum(axis=1) == 1))) \
                if len(cols) > 1 and n else None
        else:
            teacher_overall[str(name)] = _f1(full, Y)
    avg = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    if task == "multiclass":
        naive_dec = np.zeros((n, L), bool)
        if n:
            naive_dec[np.arange(n), np.argmax(np.nan_to_num(avg, nan=-1.0), axis=1)] = True
    else:
        naive_dec = np.nan_to_num(avg, nan=-1.0) >= threshold
    # the student, on its own labels (columns of its scores output)
    pred = store.predict(m.model_id, split="test")
    pid = np.asarray(pred.column("example_id").to_numpy(), np.int64)
    P = np.full((n, L), -1.0)
    sel = np.isin(pid, ids)
    scores = np.asarray(pred.column("scores").to_pylist(), dtype=float)[sel] if pid.size else np.zeros((0, 0))
    mcols = np.asarray([col[i] for i in m.label_ids], np.int64)
    if scores.size:
        P[np.ix_(np.searchsorted(ids, pid[sel]), mcols)] = scores
    if task == "multiclass":
        stud_dec = np.zeros((n, L), bool)
        if n:
            stud_dec[np.arange(n), P.argmax(axis=1)] = True
    else:
        stud_dec = threshold <= P
    rows = []
    for j, (_, lname) in enumerate(labels):
        best = max(per_label[j], key=lambda x: x[1], default=None)
        rows.append(LabelScore(lname, int(Y[:, j].sum()), best[0] if best else None, best[1] if best else None,
                               _f1(naive_dec[:, j], Y[:, j]), _f1(stud_dec[:, j], Y[:, j])))

    def overall(dec: np.ndarray) -> float:
        if task == "multiclass":
            return float(np.mean(dec[np.arange(n), Y.argmax(axis=1)])) if n else float("nan")
        return _f1(dec, Y)

    scored = {k: v for k, v in teacher_overall.items() if v is not None}
    best_t = max(scored, key=lambda k: scored[k]) if scored else None
    return Summary(task, "accuracy" if task == "multiclass" else "micro_f1", n, tuple(rows), teacher_overall, best_t,
                   scored[best_t] if best_t else None, overall(naive_dec), overall(stud_dec))


__all__ = [
    "DistillConfig",
    "DistillReport",
    "LabelScore",
    "StageResult",
    "Summary",
    "distill",
    "load_config",
    "parse_config",
    "score_test_split",
    "stage_records",
]
