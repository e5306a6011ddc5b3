"""``kdstore report``: one self-contained HTML file describing what a store holds and how it did.

Everything is read from the store: the evaluation views (``kd.label_metrics``, ``kd.label_experts``,
``kd.labels_without_expert``, ``kd.consensus*``), the trust views (``kd.trust_calibration``,
``kd.trust_reliability``), a distillation run (``kd.targets`` + ``kd.runs``) and a student
(``kd.models``: training curve, valid/test metrics). Plots are matplotlib PNGs (extra ``report``,
Agg, imported only when a plot is drawn) embedded as base64 ``data:`` URIs; CSS is inline; the file
loads nothing from anywhere. Every text that comes from the store (teacher and label names, params)
is HTML-escaped. A section without data (no trust model, no run, no student) says so and names the
command that would fill it.

The section "student vs teachers" is the one place that reads the test split: it is a report, run
after every choice was made, like the student's own test metrics in ``kd.models``.

>>> import kdstore
>>> with kdstore.connect() as store:
...     page = render_html(store)
>>> page.startswith("<!DOCTYPE html>") and 'id="teacher-metrics"' in page
True
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import html
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdstore.errors import KdstoreError
from kdstore.student.registry import _json

if TYPE_CHECKING:
    import pyarrow as pa

    from kdstore.store.core import Store
    from kdstore.student.registry import StudentModel

#: Section ids, in page order (each is an ``<section id=...>``; docs/report.md describes them).
SECTIONS: tuple[str, ...] = (
    "summary",
    "teacher-metrics",
    "experts",
    "consensus",
    "trust",
    "distillation-set",
    "student",
    "student-vs-teachers",
)

_DECIDING = "('binary', 'multiclass', 'multilabel', 'vote')"


@dataclass(frozen=True, slots=True)
class ReportResult:
    """What :func:`write_report` wrote.

    Attributes:
        path: the HTML file.
        run_id: the distillation run described (None: no run in the store).
        model_id: the student described (None: no student).
        available: section id -> whether it had data (False = a "not available" note).
        images: number of embedded PNGs.
        size: bytes written.
    """

    path: Path
    run_id: int | None
    model_id: int | None
    available: dict[str, bool]
    images: int
    size: int


@dataclass(frozen=True, slots=True)
class _Section:
    id: str
    title: str
    body: str
    available: bool


# ---------------------------------------------------------------------------------------------
# HTML helpers (every value goes through esc)
# ---------------------------------------------------------------------------------------------
def esc(value: Any) -> str:
    """HTML-escaped text of a value (quotes too: safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "–" if math.isnan(v) else f"{v:.{digits}f}"
    return str(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, cls: str = "", caption: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for v in row:
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            cells.append(f'<td class="num">{esc(_fmt(v))}</td>' if num else f"<td>{esc(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<table class="{esc(cls)}">{cap}<thead><tr>{head}</tr></thead><tbody>' + "".join(body)
            + "</tbody></table>")


def _note(text: str, command: str | None = None) -> str:
    cmd = f" Run <code>{esc(command)}</code>." if command else ""
    return f'<p class="note">Not available: {esc(text)}.{cmd}</p>'


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}"><figcaption>{esc(alt)}</figcaption></figure>'


def _rows(tbl: pa.Table) -> list[dict[str, Any]]:
    return tbl.to_pylist()  # type: ignore[no-any-return]


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


# ---------------------------------------------------------------------------------------------
# plots (matplotlib, object API: no pyplot state, Agg canvas)
# ---------------------------------------------------------------------------------------------
def _mpl_text(text: str, limit: int = 28) -> str:
    """A name safe for matplotlib: ``$`` would start mathtext; long names are cut."""
    t = text if len(text) <= limit else text[: limit - 1] + "…"
    return t.replace("$", r"\$")


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=96, layout="constrained")


def _png(fig: Any) -> bytes:
    import warnings

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # a glyph missing from the font (exotic teacher names) is not an error
        warnings.simplefilter("ignore", UserWarning)
        fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _heatmaps(mats: Sequence[tuple[str, np.ndarray]], rows: Sequence[str], cols: Sequence[str]) -> bytes:
    n_r, n_c = len(rows), len(cols)
    cell = 0.32 if max(n_r, n_c) <= 40 else 0.12
    w = min(7.5, 1.8 + cell * n_c)
    h = min(14.0, 1.6 + cell * n_r)
    fig = _figure(w * len(mats), h)
    axes = fig.subplots(1, len(mats), squeeze=False)[0]
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="#dddddd")
    for ax, (title, m) in zip(axes, mats, strict=True):
        im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        ax.set_title(title)
        if n_c <= 60:
            ax.set_xticks(range(n_c), [_mpl_text(c, 16) for c in cols], rotation=90, fontsize=7)
        if n_r <= 60:
            ax.set_yticks(range(n_r), [_mpl_text(r) for r in rows], fontsize=7)
        if n_r * n_c <= 300:
            for i, j in zip(*np.nonzero(~np.isnan(m)), strict=True):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if m[i, j] < 0.6 else "black")
        ax.set_xlabel("label")
    axes[0].set_ylabel("teacher")
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    return _png(fig)


def _bars(groups: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, ylabel: str, title: str,
          stacked: bool = False) -> bytes:
    n = len(groups)
    fig = _figure(min(12.0, 2.5 + 0.35 * n * max(1, len(series) if not stacked else 1)), 3.6)
    ax = fig.subplots()
    x = np.arange(n)
    width = 0.8 if stacked else 0.8 / max(1, len(series))
    bottom = np.zeros(n)
    for k, (name, vals) in enumerate(series):
        v = np.asarray([np.nan if x_ is None else x_ for x_ in vals], dtype=float)
        if stacked:
            ax.bar(x, np.nan_to_num(v), width, bottom=bottom, label=_mpl_text(name))
            bottom = bottom + np.nan_to_num(v)
        else:
            ax.bar(x - 0.4 + width * (k + 0.5), np.nan_to_num(v), width, label=_mpl_text(name))
    if n <= 60:
        ax.set_xticks(x, [_mpl_text(g, 16) for g in groups], rotation=90 if n > 8 else 0, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# what the report describes
# ---------------------------------------------------------------------------------------------
def _views(store: Store) -> set[str]:
    rows = store.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'kd'").fetchall()
    return {str(r[0]) for r in rows}


def _latest_model(store: Store) -> int | None:
    """The student the latest ``distill`` chose (its score stage), else the newest student."""
    row = store.one("""
        SELECT CAST(r.metrics->>'model_id' AS INTEGER) FROM kd.runs AS r
        JOIN kd.models AS m ON m.model_id = CAST(r.metrics->>'model_id' AS INTEGER) AND m.kind = 'student'
        WHERE r.kind = 'distill' AND r.params->>'stage' = 'score' ORDER BY r.run_id DESC LIMIT 1""")
    if row is not None and row[0] is not None:
        return int(row[0])
    row = store.one("SELECT max(model_id) FROM kd.models WHERE kind = 'student'")
    return None if row is None or row[0] is None else int(row[0])


def choose(store: Store, *, run: int | None = None, model: int | str | None = None) -> tuple[int | None, int | None]:
    """The (run_id, model_id) a report describes.

    Defaults: the student the latest ``distill`` chose, else the latest student; the run that trained it when that run has targets, else the
    latest run with targets. A given ``run`` must have rows in ``kd.targets``; a given ``model``
    (id or name) must be a student in ``kd.models``.
    """
    model_id = store.models.load(model).model_id if model is not None else _latest_model(store)
    if run is not None:
        row = store.one("SELECT count(*) FROM kd.targets WHERE run_id = ?", [run])
        if row is None or int(row[0]) == 0:
            raise KdstoreError(f"run {run} has no rows in kd.targets (see: kdstore query STORE "
                               "\"SELECT run_id, kind, params FROM kd.runs\")")
        return int(run), model_id
    if model_id is not None:
        row = store.one("SELECT m.run_id FROM kd.models AS m WHERE m.model_id = ? "
                        "AND EXISTS (SELECT 1 FROM kd.targets AS t WHERE t.run_id = m.run_id)", [model_id])
        if row is not None and row[0] is not None:
            return int(row[0]), model_id
    row = store.one("SELECT max(run_id) FROM kd.targets")
    return (None if row is None or row[0] is None else int(row[0])), model_id


def teacher_test_scores(store: Store) -> pa.Table:
    """Per deciding teacher x label of its alignment, its decisions scored on the TEST split.

    Over the test examples with gold (closed world: a label not in ``kd.gold`` is negative); an
    abstain is a miss, so recall = tp / support, support = test examples whose gold has the label.
    Decisions as in ``kd.select_decisions``. Columns: teacher_id, teacher, label_id, label, support,
    covered, tp, fp, fn, precision, recall, f1 (NULL on a zero denominator). Reporting only.
    """
    return store.query(
        f"""
        WITH te AS (
            SELECT DISTINCT g.example_id FROM kd.gold AS g
            JOIN kd.examples AS e ON e.example_id = g.example_id AND e.split = 'test'
        ),
        gt AS (SELECT DISTINCT g.example_id, g.label_id FROM kd.gold AS g JOIN te ON te.example_id = g.example_id),
        d AS (
            SELECT d.teacher_id, d.example_id, d.label_id, d.positive
            FROM kd.select_decisions AS d JOIN te ON te.example_id = d.example_id
            WHERE d.split = 'test'
        ),
        c AS (
            SELECT d.teacher_id, d.label_id, count(*) AS covered,
                   count(*) FILTER (WHERE d.positive AND gt.example_id IS NOT NULL) AS tp,
                   count(*) FILTER (WHERE d.positive AND gt.example_id IS NULL) AS fp
            FROM d LEFT JOIN gt ON gt.example_id = d.example_id AND gt.label_id = d.label_id
            GROUP BY d.teacher_id, d.label_id
        ),
        s AS (SELECT label_id, count(*) AS support FROM gt GROUP BY label_id)
        SELECT t.teacher_id, t.name AS teacher, tl.label_id, l.name AS label,
               coalesce(s.support, 0) AS support, coalesce(c.covered, 0) AS covered,
               coalesce(c.tp, 0) AS tp, coalesce(c.fp, 0) AS fp, coalesce(s.support, 0) - coalesce(c.tp, 0) AS fn,
               c.tp / CAST(NULLIF(c.tp + c.fp, 0) AS DOUBLE) AS precision,
               coalesce(c.tp, 0) / CAST(NULLIF(s.support, 0) AS DOUBLE) AS recall,
               2 * coalesce(c.tp, 0)
                   / CAST(NULLIF(coalesce(c.tp, 0) + coalesce(c.fp, 0) + coalesce(s.support, 0), 0) AS DOUBLE) AS f1
        FROM kd.teacher_labels AS tl
        JOIN kd.teachers AS t ON t.teacher_id = tl.teacher_id AND t.output_type IN {_DECIDING}
        JOIN kd.labels AS l ON l.label_id = tl.label_id
        LEFT JOIN c ON c.teacher_id = tl.teacher_id AND c.label_id = tl.label_id
        LEFT JOIN s ON s.label_id = tl.label_id
        ORDER BY tl.teacher_id, tl.label_id
        """
    )


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------
def _summary(store: Store, run_id: int | None, model_id: int | None) -> _Section:
    info = store.info()
    rows: list[tuple[str, Any]] = [("store", info.path), ("schema version", info.schema_version)]
    rows += [(f"examples ({k})", v) for k, v in sorted(info.splits.items())]
    rows += [("labels", len(info.labels)), ("teachers", len(info.teachers)),
             ("feature sources", ", ".join(info.feature_sources) or "–")]
    rows += [(f"rows in kd.{k}", v) for k, v in info.counts.items()]
    rows += [("distillation run shown", run_id), ("student shown", model_id)]
    return _Section("summary", "Store", _table(["what", "value"], rows, cls="kv"), True)


def _teacher_metrics(store: Store) -> _Section:
    tbl = store.query(
        "SELECT teacher_id, teacher, label_id, label, covered, support, tp, fp, fn, precision, recall, f1, precision_lb "
        "FROM kd.label_metrics ORDER BY teacher_id, label_id")
    if tbl.num_rows == 0:
        return _Section("teacher-metrics", "Teachers × labels: precision and recall (valid split)",
                        _note("no teacher with decisions (binary, multiclass, multilabel or vote outputs)",
                              "kdstore ingest STORE outputs ... (or kdstore run STORE)"), False)
    rows = _rows(tbl)
    teachers = list(dict.fromkeys((r["teacher_id"], r["teacher"]) for r in rows))
    labels = sorted({(r["label_id"], r["label"]) for r in rows})
    ti = {t[0]: i for i, t in enumerate(teachers)}
    li = {lab[0]: j for j, lab in enumerate(labels)}
    prec = np.full((len(teachers), len(labels)), np.nan)
    rec = np.full_like(prec, np.nan)
    for r in rows:
        i, j = ti[r["teacher_id"]], li[r["label_id"]]
        prec[i, j] = np.nan if r["precision"] is None else r["precision"]
        rec[i, j] = np.nan if r["recall"] is None else r["recall"]
    png = _heatmaps([("precision", prec), ("recall", rec)], [t[1] for t in teachers], [lab[1] for lab in labels])
    body = [
        "<p>Each teacher judged on its own labels over the valid examples it covers (closed-world gold). "
        "Gray: the teacher has no opinion on that label, or the ratio is undefined.</p>",
        _img(png, "precision and recall per teacher and label (valid split)"),
        "<details><summary>the numbers (kd.label_metrics)</summary>",
        _table(["teacher", "label", "covered", "support", "tp", "fp", "fn", "precision", "recall", "f1", "precision_lb"],
               [[r["teacher"], r["label"], r["covered"], r["support"], r["tp"], r["fp"], r["fn"], r["precision"],
                 r["recall"], r["f1"], r["precision_lb"]] for r in rows], cls="label-metrics"),
        "</details>",
    ]
    return _Section("teacher-metrics", "Teachers × labels: precision and recall (valid split)", "".join(body), True)


def _label_experts(store: Store) -> Callable[[], list[dict[str, Any]]]:
    """``kd.label_experts`` (every teacher of every label, qualifiers by rank), read at most once, when first asked."""
    return functools.cache(lambda: _rows(store.query(
        "SELECT label_id, teacher_id, teacher, metric_name, metric, support, rank, is_best, within_margin, qualifies "
        "FROM kd.label_experts ORDER BY label_id, rank")))


def _experts(store: Store, label_experts: Callable[[], list[dict[str, Any]]]) -> _Section:
    labels = _rows(store.query("SELECT label_id, name FROM kd.labels ORDER BY label_id"))
    if not labels:
        return _Section("experts", "Experts per label", _note("the store has no labels", "kdstore ingest STORE labels FILE"), False)
    why = {r["label_id"]: r for r in _rows(store.query("SELECT label_id, n_teachers, reason FROM kd.labels_without_expert"))}
    n_have: dict[int, int] = {}
    by_label: dict[int, list[dict[str, Any]]] = {}
    for r in label_experts():
        n_have[r["label_id"]] = n_have.get(r["label_id"], 0) + 1
        if r["qualifies"]:
            by_label.setdefault(r["label_id"], []).append(r)
    rows = []
    for lab in labels:
        lid = lab["label_id"]
        quals = by_label.get(lid, [])
        best = next((q for q in quals if q["is_best"]), None)
        within = [q["teacher"] for q in quals if q["within_margin"]]
        rows.append([lab["name"], n_have.get(lid, 0), len(quals), best["teacher"] if best else None,
                     best["metric_name"] if best else None, best["metric"] if best else None,
                     ", ".join(within) if within else None, why[lid]["reason"] if lid in why else None])
    n_without = len(why)
    body = (f"<p>Teachers ranked per label by the <code>expert_metric</code> setting (kd.label_experts); experts are "
            f"the qualifying teachers within <code>expert_margin</code> of the best. {n_without} of {len(labels)} "
            "labels have no expert (kd.labels_without_expert).</p>"
            + _table(["label", "teachers", "qualifying", "best teacher", "metric", "best metric", "experts (within margin)",
                      "why no expert"], rows, cls="experts"))
    return _Section("experts", "Experts per label", body, True)


def _consensus(store: Store, views: set[str]) -> _Section:
    title = "Consensus of the teachers (train + valid)"
    need = {"consensus", "consensus_z", "consensus_expertise"}
    if not need <= views:
        return _Section("consensus", title, _note(f"views {', '.join(sorted(need - views))} missing",
                                                  "kdstore init STORE (opens it read-write and installs the views)"), False)
    # one pass over kd.consensus: all its rows (is there anything?) and the calibration bins of the valid ones
    bins = store.execute(
        """
        SELECT least(floor(c.mean * 10), 9) AS b, count(e.example_id) AS n,
               avg(c.mean) FILTER (WHERE e.example_id IS NOT NULL) AS mean_score,
               avg(CAST(g.example_id IS NOT NULL AS INTEGER)) FILTER (WHERE e.example_id IS NOT NULL) AS frac_gold,
               count(*) AS n_all
        FROM kd.consensus AS c
        LEFT JOIN kd.examples AS e ON e.example_id = c.example_id AND e.split = 'valid'
        LEFT JOIN kd.gold AS g ON g.example_id = c.example_id AND g.label_id = c.label_id
        GROUP BY 1 ORDER BY 1
        """).fetchall()
    if not sum(int(r[4]) for r in bins):
        return _Section("consensus", title, _note("no teacher outputs on train or valid examples",
                                                  "kdstore ingest STORE outputs ... (or kdstore run STORE)"), False)
    rel = [r[:4] for r in bins if r[1]]
    hist = store.execute(
        "SELECT floor(z * 4) / 4 AS b, count(*) FROM kd.consensus_z WHERE z IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()
    fig = _figure(10.0, 3.6)
    a1, a2 = fig.subplots(1, 2)
    if hist:
        a1.bar([float(b) + 0.125 for b, _ in hist], [int(c) for _, c in hist], width=0.25, color="#4c72b0")
    a1.set_title("z-scores of outputs against the consensus (kd.consensus_z)")
    a1.set_xlabel("z")
    a1.set_ylabel("outputs")
    a2.plot([0, 1], [0, 1], ls="--", color="gray", lw=1)
    if rel:
        a2.plot([float(r[2]) for r in rel], [float(r[3]) for r in rel], marker="o", color="#dd8452")
    a2.set_xlim(0, 1)
    a2.set_ylim(0, 1)
    a2.set_title("consensus mean vs share of gold positives (valid)")
    a2.set_xlabel("mean teacher score (kd.consensus)")
    a2.set_ylabel("share with this gold label")
    png = _png(fig)
    per = _rows(store.query(
        """
        SELECT x.teacher_id, t.name AS teacher, count(*) AS labels, sum(x.n_outputs) AS outputs,
               sum(x.n_stand_out) / CAST(NULLIF(sum(x.n_defined), 0) AS DOUBLE) AS stand_out_rate,
               sum(x.n_stand_out_example) / CAST(NULLIF(sum(x.n_defined_example), 0) AS DOUBLE) AS stand_out_rate_example,
               avg(x.mean_z) AS mean_z_when_standing_out
        FROM kd.consensus_expertise AS x JOIN kd.teachers AS t ON t.teacher_id = x.teacher_id
        GROUP BY ALL ORDER BY x.teacher_id
        """))
    body = ("<p>How far each output sits from the crowd (z-score against the teachers scoring the same example and label), "
            "and whether the crowd's mean score is calibrated against valid gold. A teacher that often stands out "
            "(z ≥ <code>z_threshold</code>) knows something the others do not: a specialist, or a broken model.</p>"
            + _img(png, "consensus z-score histogram and consensus calibration on valid")
            + _table(["teacher", "labels", "outputs", "stand-out rate (label)", "stand-out rate (example)",
                      "mean z when standing out"],
                     [[r["teacher"], r["labels"], r["outputs"], r["stand_out_rate"], r["stand_out_rate_example"],
                       r["mean_z_when_standing_out"]] for r in per], cls="consensus"))
    return _Section("consensus", title, body, True)


def _trust(store: Store, views: set[str]) -> _Section:
    title = "Trust models: calibration on valid (out-of-fold)"
    n = store.one("SELECT count(*) FROM kd.trust")
    if n is None or int(n[0]) == 0:
        return _Section("trust", title, _note("no trust model fitted (kd.trust is empty)", "kdstore trust STORE"), False)
    if not {"trust_calibration", "trust_reliability"} <= views:
        return _Section("trust", title, _note("the trust views are missing", "kdstore init STORE"), False)
    cal = _rows(store.query(
        "SELECT c.teacher_id, t.name AS teacher, c.model_id, c.n, c.n_correct, c.brier, c.auc "
        "FROM kd.trust_calibration AS c JOIN kd.teachers AS t ON t.teacher_id = c.teacher_id ORDER BY c.teacher_id"))
    rel = _rows(store.query("SELECT teacher_id, bin, n, mean_p, frac_correct FROM kd.trust_reliability ORDER BY teacher_id, bin"))
    run = store.one("SELECT run_id, params, metrics FROM kd.runs WHERE kind = 'trust' ORDER BY run_id DESC LIMIT 1")
    fig = _figure(6.0, 4.2)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect")
    per: dict[int, list[dict[str, Any]]] = {}
    for r in rel:
        per.setdefault(r["teacher_id"], []).append(r)
    for rs in per.values():
        ax.plot([r["mean_p"] for r in rs], [r["frac_correct"] for r in rs], color="#4c72b0", alpha=0.25, lw=1)
    if rel:
        bins = sorted({r["bin"] for r in rel})
        pooled = [(sum(r["n"] * r["mean_p"] for r in rel if r["bin"] == b) / sum(r["n"] for r in rel if r["bin"] == b),
                   sum(r["n"] * r["frac_correct"] for r in rel if r["bin"] == b) / sum(r["n"] for r in rel if r["bin"] == b))
                  for b in bins]
        ax.plot([p for p, _ in pooled], [f for _, f in pooled], marker="o", color="#c44e52", lw=2, label="all teachers")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted p_correct (kd.trust)")
    ax.set_ylabel("share of decisions correct")
    ax.set_title("trust reliability (kd.trust_reliability); thin: one teacher")
    ax.legend(fontsize=7)
    png = _png(fig)
    intro = ""
    if run is not None:
        params, metrics = _json(run[1]), _json(run[2])
        intro = (f"<p>Latest trust run {esc(run[0])}: kind <code>{esc(params.get('kind'))}</code>, "
                 f"{esc(_fmt(metrics.get('units')))} decisions scored, out-of-fold AUC on valid "
                 f"{esc(_fmt(metrics.get('oof_auc')))}, Brier {esc(_fmt(metrics.get('oof_brier')))}.</p>")
    body = (intro + _img(png, "trust reliability curve on valid")
            + _table(["teacher", "model", "valid decisions", "correct", "Brier", "AUC"],
                     [[r["teacher"], r["model_id"], r["n"], r["n_correct"], r["brier"], r["auc"]] for r in cal],
                     cls="trust-calibration"))
    return _Section("trust", title, body, True)


def _distillation_set(store: Store, run_id: int | None) -> _Section:
    title = "The distillation set"
    if run_id is None:
        return _Section("distillation-set", title, _note("no distillation run (kd.targets is empty)",
                                                         "kdstore select STORE POLICY"), False)
    run = store.one("SELECT kind, params, metrics, created_at FROM kd.runs WHERE run_id = ?", [run_id])
    params, metrics = (_json(run[1]), _json(run[2])) if run else ({}, {})
    comp = _rows(store.query(
        """
        SELECT rule, teacher_id IS NULL AS gold, count(DISTINCT example_id) AS examples, count(*) AS rows,
               count(*) FILTER (WHERE target >= 0.5) AS positives, avg(weight) AS mean_weight
        FROM kd.targets WHERE run_id = ? GROUP BY ALL ORDER BY gold, rule
        """, [run_id]))
    per_label = _rows(store.query(
        """
        SELECT l.label_id, l.name AS label,
               count(*) FILTER (WHERE t.teacher_id IS NOT NULL AND t.target >= 0.5) AS inferred,
               count(*) FILTER (WHERE t.teacher_id IS NULL AND t.target >= 0.5) AS gold,
               count(*) AS rows
        FROM kd.targets AS t JOIN kd.labels AS l ON l.label_id = t.label_id
        WHERE t.run_id = ? GROUP BY ALL ORDER BY l.label_id
        """, [run_id]))
    per_teacher = _rows(store.query(
        """
        SELECT coalesce(te.name, '(gold)') AS source, count(DISTINCT t.example_id) AS examples, count(*) AS rows,
               count(*) FILTER (WHERE t.target >= 0.5) AS positives
        FROM kd.targets AS t LEFT JOIN kd.teachers AS te ON te.teacher_id = t.teacher_id
        WHERE t.run_id = ? GROUP BY ALL ORDER BY rows DESC, source
        """, [run_id]))
    runs = _rows(store.query(
        """
        SELECT r.run_id, r.kind, r.params->>'policy' AS policy, r.params->>'task' AS task,
               count(t.run_id) AS targets, r.created_at
        FROM kd.runs AS r LEFT JOIN kd.targets AS t ON t.run_id = r.run_id
        WHERE r.kind NOT IN ('trust', 'distill') GROUP BY ALL ORDER BY r.run_id
        """))
    png = _bars([r["label"] for r in per_label],
                [("inferred (teachers)", [r["inferred"] for r in per_label]), ("gold", [r["gold"] for r in per_label])],
                ylabel="positive targets (target ≥ 0.5)", title=f"run {run_id}: positive targets per label", stacked=True)
    kv = [("run", run_id), ("kind", run[0] if run else None), ("created", run[3] if run else None),
          ("policy", params.get("policy")), ("task", params.get("task")), ("gold weight", params.get("gold_weight")),
          ("settings", json.dumps(params.get("settings"), sort_keys=True) if params.get("settings") else None)]
    kv += [(k.replace("_", " "), v) for k, v in metrics.items() if not isinstance(v, (dict, list))]
    body = ("<p>Which targets the student learns from (kd.targets): inferred rows carry the teacher that contributed "
            "most (provenance); gold rows (teacher NULL) come from the valid split.</p>"
            + _table(["what", "value"], kv, cls="kv run")
            + "<h3>Composition by rule</h3>"
            + _table(["rule", "source", "examples", "rows", "positive targets", "mean weight"],
                     [[r["rule"], "gold" if r["gold"] else "inferred", r["examples"], r["rows"], r["positives"],
                       r["mean_weight"]] for r in comp], cls="composition")
            + _img(png, "positive targets per label, inferred vs gold")
            + "<h3>Per label</h3>"
            + _table(["label", "inferred positives", "gold positives", "rows"],
                     [[r["label"], r["inferred"], r["gold"], r["rows"]] for r in per_label], cls="per-label")
            + "<h3>Per source (provenance)</h3>"
            + _table(["source", "examples", "rows", "positive targets"],
                     [[r["source"], r["examples"], r["rows"], r["positives"]] for r in per_teacher], cls="provenance")
            + "<h3>All distillation runs</h3>"
            + _table(["run", "kind", "policy", "task", "targets", "created"],
                     [[r["run_id"], r["kind"], r["policy"], r["task"], r["targets"], r["created_at"]] for r in runs],
                     cls="runs"))
    return _Section("distillation-set", title, body, True)


def _features_text(spec: Any) -> str | None:
    if not isinstance(spec, dict):
        return None
    what = "embeddings of teacher" if spec.get("kind") == "embeddings" else "feature source"
    return f"{what} {spec.get('name')} ({spec.get('dim')} values)"


def _student(store: Store, m: StudentModel | None) -> _Section:
    title = "The student"
    if m is None:
        return _Section("student", title, _note("no student in kd.models",
                                                "kdstore train STORE --run R --features SOURCE"), False)
    curve = m.metrics.get("curve") or []
    hp = m.params.get("hyper_parameters", {})
    kv = [("model", f"{m.name} (id {m.model_id})"), ("trained on run", m.run_id), ("task", m.task),
          ("features", _features_text(m.params.get("features"))),
          ("parameters", m.params.get("n_params")), ("hidden layers", json.dumps(hp.get("hidden"))),
          ("epochs run", len(curve)), ("best epoch", m.metrics.get("best_epoch")),
          ("stopped early", m.metrics.get("stopped_early")), ("early stopping on", m.params.get("valid_source")),
          ("training examples", m.metrics.get("train_examples")), ("training seconds", m.metrics.get("train_seconds"))]
    for split in ("valid", "test"):
        d = m.metrics.get(split, {})
        for key in ("loss", "accuracy", "micro_f1", "macro_f1"):
            if d.get(key) is not None:
                kv.append((f"{split} {key}", d[key]))
    parts = [_table(["what", "value"], kv, cls="kv student-info")]
    tried = m.metrics.get("candidates")
    if tried:
        chosen = m.metrics.get("chosen_candidate")
        parts.append(_table(
            ["candidate", "hyper-parameters (differing)", "valid score", "valid loss", "best epoch", "kept"],
            [[i, json.dumps({k: v for k, v in t["hyper_parameters"].items()
                             if any(u["hyper_parameters"].get(k) != v for u in tried)}),
              t.get("valid_score"), t.get("valid_loss"), t.get("best_epoch"), "yes" if i == chosen else ""]
             for i, t in enumerate(tried)], cls="student-candidates"))
    if curve:
        fig = _figure(6.5, 3.6)
        ax = fig.subplots()
        ep = [c["epoch"] for c in curve]
        ax.plot(ep, [c["train_loss"] for c in curve], marker=".", label="train loss")
        if any(c.get("valid_loss") is not None for c in curve):
            ax.plot(ep, [np.nan if c.get("valid_loss") is None else c["valid_loss"] for c in curve], marker=".",
                    label="valid loss")
        if m.metrics.get("best_epoch") is not None:
            ax.axvline(m.metrics["best_epoch"], color="gray", ls="--", lw=1, label="best epoch (kept)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(f"learning curve of {_mpl_text(m.name)}")
        ax.legend(fontsize=7)
        parts.append(_img(_png(fig), "student learning curve (train and valid loss per epoch)"))
    else:
        parts.append(_note("the model has no training curve (trained outside kdstore?)"))
    va = m.metrics.get("valid", {}).get("labels", {})
    te = m.metrics.get("test", {}).get("labels", {})
    if m.labels:
        def g(d: dict[str, Any], lab: str, k: str) -> Any:
            return d.get(lab, {}).get(k)

        parts.append(_table(
            ["label", "valid precision", "valid recall", "valid f1", "valid support",
             "test precision", "test recall", "test f1", "test support"],
            [[lab, g(va, lab, "precision"), g(va, lab, "recall"), g(va, lab, "f1"), g(va, lab, "support"),
              g(te, lab, "precision"), g(te, lab, "recall"), g(te, lab, "f1"), g(te, lab, "support")] for lab in m.labels],
            cls="student-labels"))
    return _Section("student", title, "".join(parts), True)


def _student_vs_teachers(
    store: Store, m: StudentModel | None, views: set[str], label_experts: Callable[[], list[dict[str, Any]]]
) -> _Section:
    title = "Student vs teachers (test split)"
    if m is None:
        return _Section("student-vs-teachers", title, _note("no student in kd.models",
                                                            "kdstore train STORE --run R --features SOURCE"), False)
    te = m.metrics.get("test", {})
    if te.get("source") != "gold" or not te.get("labels"):
        return _Section("student-vs-teachers", title,
                        _note("the student has no test metrics (no gold on the test split for its labels)",
                              "kdstore ingest STORE gold FILE (test examples)"), False)
    if "select_decisions" not in views:
        return _Section("student-vs-teachers", title, _note("view kd.select_decisions is missing", "kdstore init STORE"), False)
    scores = _rows(teacher_test_scores(store))
    best_valid = {r["label_id"]: r["teacher_id"] for r in label_experts() if r["is_best"]}
    stu: dict[str, Any] = te["labels"]
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in scores:
        by_label.setdefault(r["label"], []).append(r)
    rows: list[list[Any]] = []
    s_f1: list[float | None] = []
    best_f1: list[float | None] = []
    exp_f1: list[float | None] = []
    for lab, lid in zip(m.labels, m.label_ids, strict=True):
        cand = [r for r in by_label.get(lab, []) if r["f1"] is not None]
        best = max(cand, key=lambda r: (r["f1"], -r["teacher_id"])) if cand else None
        chosen = next((r for r in by_label.get(lab, []) if r["teacher_id"] == best_valid.get(lid)), None)
        sf = stu.get(lab, {}).get("f1")
        rows.append([lab, stu.get(lab, {}).get("support"), sf, best["teacher"] if best else None,
                     best["f1"] if best else None, chosen["teacher"] if chosen else None, chosen["f1"] if chosen else None,
                     None if sf is None or best is None else sf - best["f1"]])
        s_f1.append(sf)
        best_f1.append(best["f1"] if best else None)
        exp_f1.append(chosen["f1"] if chosen else None)
    png = _bars(m.labels, [("student", s_f1), ("best teacher on test", best_f1), ("valid-chosen expert", exp_f1)],
                ylabel="F1 on test", title="per-label F1 on the test split")
    per_teacher: dict[int, list[dict[str, Any]]] = {}
    for r in scores:
        per_teacher.setdefault(r["teacher_id"], []).append(r)
    trows = []
    for rs in per_teacher.values():
        labs = [r for r in rs if r["label"] in stu and r["support"] > 0]
        tf = [r["f1"] or 0.0 for r in labs]
        sf_ = [stu[r["label"]].get("f1") or 0.0 for r in labs]
        t_mean = float(np.mean(tf)) if tf else None
        s_mean = float(np.mean(sf_)) if sf_ else None
        trows.append([rs[0]["teacher"], len(rs), len(labs), t_mean, s_mean,
                      None if t_mean is None or s_mean is None else s_mean - t_mean])
    n_beats = sum(1 for r in trows if r[5] is not None and r[5] > 0)
    n_cmp = sum(1 for r in trows if r[5] is not None)
    head = [f"<p>Read once, for this report: test gold (closed world) against the student's test metrics stored in "
            f"kd.models and every teacher's decisions on the test examples (an abstain is a miss). "
            f"The student beats {n_beats} of {n_cmp} teachers on macro F1 over the teacher's own labels.</p>"]
    overall = [(k.replace("_", " "), te.get(k)) for k in ("examples", "accuracy", "micro_f1", "macro_f1") if te.get(k) is not None]
    body = ("".join(head) + _table(["student on test", "value"], overall, cls="kv")
            + _img(png, "student vs teachers: per-label F1 on test")
            + "<h3>Per label</h3>"
            + _table(["label", "test support", "student f1", "best teacher on test (hindsight)", "its f1", "valid-chosen expert",
                      "its f1", "student − best"], rows, cls="vs-labels")
            + "<h3>Per teacher (on the teacher's own labels)</h3>"
            + _table(["teacher", "labels", "labels with test support", "teacher macro f1", "student macro f1",
                      "student − teacher"], trows, cls="vs-teachers"))
    return _Section("student-vs-teachers", title, body, True)


# ---------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2433;background:#f7f8fa}
header{background:#1d2433;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c5cbd6}nav{padding:8px 32px;background:#e9ecf2}
nav a{margin-right:14px;color:#2a4d8f;text-decoration:none}main{padding:8px 32px 40px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 20px;margin:16px 0}
h2{font-size:18px;margin:4px 0 8px}h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px}th,td{border:1px solid #dde1e8;padding:3px 8px}
th{background:#eef1f6;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafbfc}figure{margin:8px 0}figure img{max-width:100%;height:auto}
figcaption{font-size:12px;color:#5b6475}.note{background:#fff7e0;border-left:4px solid #e0a800;padding:8px 12px}
code{background:#eef1f6;padding:1px 4px;border-radius:3px}details summary{cursor:pointer;color:#2a4d8f}
"""


def render_html(store: Store, *, run: int | None = None, model: int | str | None = None, title: str | None = None) -> str:
    """The report as one HTML string (see :func:`write_report`)."""
    run_id, model_id = choose(store, run=run, model=model)
    return _render(store, run_id, model_id, title)[0]


def _render(store: Store, run_id: int | None, model_id: int | None, title: str | None) -> tuple[str, list[_Section]]:
    """The page and its sections, for the run and model :func:`choose` picked; every view is read once."""
    m = store.models.load(model_id) if model_id is not None else None
    views = _views(store)
    label_experts = _label_experts(store)
    sections = [
        _summary(store, run_id, model_id),
        _teacher_metrics(store),
        _experts(store, label_experts),
        _consensus(store, views),
        _trust(store, views),
        _distillation_set(store, run_id),
        _student(store, m),
        _student_vs_teachers(store, m, views, label_experts),
    ]
    assert tuple(s.id for s in sections) == SECTIONS
    from kdstore import __version__

    heading = title or f"kdstore report: {Path(store.path).name}"
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{s.id}">{esc(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(heading)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{esc(heading)}</h1><p>{esc(store.path)} · generated {esc(stamp)} by kdstore {esc(__version__)}</p></header>",
        f"<nav>{nav}</nav><main>",
    ]
    for s in sections:
        state = "available" if s.available else "missing"
        parts.append(f'<section id="{s.id}" class="{state}"><h2>{esc(s.title)}</h2>{s.body}</section>')
    parts.append("</main></body></html>\n")
    return "\n".join(parts), sections


def write_report(
    store: Store, path: str | Path, *, run: int | None = None, model: int | str | None = None, title: str | None = None,
) -> ReportResult:
    """Write a self-contained HTML report of the store to ``path``.

    Args:
        store: the store (read only; read-only connections are fine).
        path: the HTML file to write (its folder is created).
        run: the distillation run (``kd.targets.run_id``) to describe; None = the student's run, else the latest.
        model: the student (id or name) to describe; None = the latest student.
        title: the page title (default: ``kdstore report: <store file>``).

    Returns:
        A :class:`ReportResult`: the path, the run and model shown, which sections had data.

    Raises:
        KdstoreError: an unknown run or model.
    """
    run_id, model_id = choose(store, run=run, model=model)
    page, sections = _render(store, run_id, model_id, title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    available = {s.id: s.available for s in sections}
    return ReportResult(out, run_id, model_id, available, page.count('src="data:image/png;base64,'), len(page.encode()))


__all__ = ["SECTIONS", "ReportResult", "choose", "esc", "render_html", "teacher_test_scores", "write_report"]
