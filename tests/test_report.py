"""``kdstore report``: the page's structure against the store, escaping, missing sections, CLI, headless chromium."""

from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import kdstore
from kdstore import report
from kdstore.cli import main
from kdstore.errors import KdstoreError
from tests import smallstore

#: A teacher name an attacker would choose: markup, an attribute breaker, an entity, mathtext for matplotlib.
EVIL = '$\\bad{$ <script>alert("x")</script> & \'evil\' <img src=x onerror=alert(1)>'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def build(store: kdstore.Store) -> dict[str, int]:
    """A complete store: smallstore's teachers (every scoring type) plus a hostile-named teacher,
    informative features, trust fitted, two selection runs (with valid gold) and a student on the
    later one. Returns the ids written."""
    smallstore.build(store)
    for table in ("targets", "trust", "models", "runs"):  # smallstore's placeholder lineage rows
        store.run(f"DELETE FROM kd.{table}")
    ids = store.query("SELECT example_id FROM kd.examples ORDER BY example_id").column(0).to_numpy()
    rng = np.random.default_rng(7)
    store.add_teacher(EVIL, labels=["cat"], output_type="binary")
    store.ingest_outputs(EVIL, pa.table({"example_id": ids, "label": ["cat"] * ids.size,
                                         "score": rng.random(ids.size).astype(np.float32)}))
    # features the student can learn from: the 'tags' teacher's scores (0.5 where it has no opinion) + noise
    store.register_features("signal", kdstore.Query(
        "SELECT e.example_id, " + ", ".join(f"coalesce(s.scores[{i + 1}], 0.5) + 0.05 * (hash(e.example_id, {i}) % 7) AS f{i}"
                                            for i in range(5))
        + " FROM kd.examples AS e LEFT JOIN kd.scores AS s ON s.example_id = e.example_id "
          "AND s.teacher_id = (SELECT teacher_id FROM kd.teachers WHERE name = 'tags')"))
    trust = store.fit_trust(rounds=20)
    run_experts = store.select("experts", gold_weight=1.0)
    run_trust = store.select("trust", gold_weight=1.0)
    model = store.train_student(run_trust, features="signal", hidden=(16,), epochs=12, seed=0,
                                candidates=[{}, {"hidden": (), "learning_rate": 1e-2}])
    return {"trust_run": trust.run_id, "run_experts": run_experts, "run_trust": run_trust, "model": model}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("report") / "store.duckdb"
    with kdstore.connect(path) as store:
        ids = build(store)
    return path, ids


@pytest.fixture(scope="module")
def page(built: tuple[Path, dict[str, int]]) -> str:
    with kdstore.connect(built[0], read_only=True) as store:
        return report.render_html(store)


@pytest.fixture
def ro(built: tuple[Path, dict[str, int]]) -> Iterator[kdstore.Store]:
    with kdstore.connect(built[0], read_only=True) as store:
        yield store


class Page(HTMLParser):
    """The parts of a report page the tests check: sections, tables (per class), images, notes, text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.tags: list[str] = []
        self.links: list[str] = []
        self.notes: dict[str, str] = {}
        self._section = ""
        self._table: list[list[str]] | None = None
        self._in_body = False
        self._cell: list[str] | None = None
        self._note: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self._section = a.get("id") or ""
            self.sections[self._section] = a.get("class") or ""
        elif tag == "table":
            key = f"{self._section}/{a.get('class') or ''}"
            self._table = self.tables.setdefault(key, [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table is not None:
            self._table.append([])
        elif tag == "td" and self._in_body:
            self._cell = []
        elif tag == "img":
            self.images.append(a.get("src") or "")
        elif tag == "p" and a.get("class") == "note":
            self._note = []
        if tag in ("a", "link") and a.get("href"):
            self.links.append(a["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table is not None:
            self._table[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None
        elif tag == "p" and self._note is not None:
            self.notes[self._section] = "".join(self._note)
            self._note = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._note is not None:
            self._note.append(data)


def parse(text: str) -> Page:
    p = Page()
    p.feed(text)
    p.close()
    return p


def count(store: kdstore.Store, sql: str, params: list[Any] | None = None) -> int:
    row = store.one(sql, params)
    assert row is not None
    return int(row[0])


def png_size(uri: str) -> tuple[int, int]:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    data = base64.b64decode(uri[len(prefix):], validate=True)
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return int(w), int(h)


@pytest.mark.slow  # the shared fixture store takes ~10 s to build (trust, two runs, a student)
def test_sections_tables_and_images_match_the_store(page: str, ro: kdstore.Store, built: tuple[Path, dict[str, int]]) -> None:
    ids = built[1]
    p = parse(page)
    assert list(p.sections) == list(report.SECTIONS)
    assert set(p.sections.values()) == {"available"}, p.notes
    run = ids["run_trust"]  # the student's run is the default
    expect = {
        "teacher-metrics/label-metrics": count(ro, "SELECT count(*) FROM kd.label_metrics"),
        "experts/experts": count(ro, "SELECT count(*) FROM kd.labels"),
        "consensus/consensus": count(ro, "SELECT count(DISTINCT teacher_id) FROM kd.consensus_expertise"),
        "trust/trust-calibration": count(ro, "SELECT count(*) FROM kd.trust_calibration"),
        "distillation-set/composition": count(ro, "SELECT count(DISTINCT (rule, teacher_id IS NULL)) FROM kd.targets WHERE run_id = ?", [run]),
        "distillation-set/per-label": count(ro, "SELECT count(DISTINCT label_id) FROM kd.targets WHERE run_id = ?", [run]),
        "distillation-set/provenance": count(ro, "SELECT count(DISTINCT coalesce(teacher_id, -1)) FROM kd.targets WHERE run_id = ?", [run]),
        "distillation-set/runs": count(ro, "SELECT count(*) FROM kd.runs WHERE kind = 'select'"),
        "student/student-labels": len(ro.models.load(ids["model"]).labels),
        "student/student-candidates": 2,
        "student-vs-teachers/vs-labels": len(ro.models.load(ids["model"]).labels),
        "student-vs-teachers/vs-teachers": count(
            ro, "SELECT count(*) FROM kd.teachers WHERE output_type IN ('binary', 'multiclass', 'multilabel', 'vote')"),
    }
    for key, n in expect.items():
        assert key in p.tables, key
        assert len(p.tables[key]) == n, key
        assert n > 0, key
    # the experts table names the best teacher of each label as kd.label_experts does
    best = dict(ro.execute("SELECT l.name, x.teacher FROM kd.labels l LEFT JOIN kd.label_experts x "
                           "ON x.label_id = l.label_id AND x.is_best").fetchall())
    assert {r[0]: r[3] for r in p.tables["experts/experts"]} == {k: v if v is not None else "–" for k, v in best.items()}
    # the composition counts are the store's
    comp = {(r[0], r[1]): int(r[3].replace(",", "")) for r in p.tables["distillation-set/composition"]}
    want = ro.execute("SELECT rule, CASE WHEN teacher_id IS NULL THEN 'gold' ELSE 'inferred' END, count(*) "
                      "FROM kd.targets WHERE run_id = ? GROUP BY ALL", [run]).fetchall()
    assert comp == {(a, b): int(c) for a, b, c in want}
    assert {k[1] for k in comp} == {"gold", "inferred"}
    # the candidates table: what differs, each valid score, the kept one as stored
    m = ro.models.load(ids["model"])
    cands = p.tables["student/student-candidates"]
    assert [r[1] for r in cands] == ['{"hidden": [16], "learning_rate": 0.001}', '{"hidden": [], "learning_rate": 0.01}']
    assert [r[5] for r in cands].index("yes") == m.metrics["chosen_candidate"]
    assert [float(r[2]) for r in cands] == pytest.approx([t["valid_score"] for t in m.metrics["candidates"]], abs=1e-3)
    # six plots: heatmaps, consensus, trust reliability, composition, learning curve, student vs teachers
    assert len(p.images) == 6
    for uri in p.images:
        w, h = png_size(uri)
        assert w > 200 and h > 150
    # self-contained: no script, no external resource
    assert "script" not in p.tags and "link" not in p.tags
    assert all(link.startswith("#") for link in p.links)
    assert "http://" not in page and "https://" not in page


def _oracle_teacher_test_scores(store: kdstore.Store) -> dict[tuple[int, int], tuple[int, int, int, Fraction | None]]:
    """NumPy/Python: per teacher x label (tp, fp, fn, f1) of its decisions on labeled test examples."""
    split = dict(store.execute("SELECT example_id, split FROM kd.examples").fetchall())
    gold: dict[int, set[int]] = {}
    for e, lab in store.execute("SELECT example_id, label_id FROM kd.gold").fetchall():
        if split[e] == "test":
            gold.setdefault(int(e), set()).add(int(lab))
    setting = float(store.settings["threshold"])
    teachers = {int(t): (o, setting if th is None else float(th)) for t, o, th in store.execute(
        "SELECT teacher_id, output_type, threshold FROM kd.teachers "
        "WHERE output_type IN ('binary', 'multiclass', 'multilabel', 'vote')").fetchall()}
    align: dict[int, list[int]] = {}
    for t, lab in store.execute("SELECT teacher_id, label_id FROM kd.teacher_labels ORDER BY teacher_id, output_index").fetchall():
        align.setdefault(int(t), []).append(int(lab))
    out: dict[tuple[int, int], list[int]] = {(t, lab): [0, 0] for t in teachers for lab in align.get(t, [])}
    for t, e, scores in store.execute("SELECT teacher_id, example_id, scores FROM kd.scores").fetchall():
        if t not in teachers or int(e) not in gold:
            continue
        kind, thr = teachers[t]
        s = np.array([np.nan if v is None else v for v in scores], dtype=np.float32)
        labs = np.asarray(align[t])
        have = ~np.isnan(s)
        if kind in ("multiclass", "vote"):
            top = s[have].max()
            pos = {int(labs[have & (s == top)].min())}
        else:
            pos = {int(labs[i]) for i in np.flatnonzero(have) if float(s[i]) >= thr}
        for lab in pos:
            out[(t, lab)][0 if lab in gold[int(e)] else 1] += 1
    support: dict[int, int] = {}
    for labs_ in gold.values():
        for lab in labs_:
            support[lab] = support.get(lab, 0) + 1
    res = {}
    for (t, lab), (tp, fp) in out.items():
        fn = support.get(lab, 0) - tp
        res[(t, lab)] = (tp, fp, fn, Fraction(2 * tp, 2 * tp + fp + fn) if 2 * tp + fp + fn else None)
    return res


@pytest.mark.slow  # the shared fixture store takes ~10 s to build (trust, two runs, a student)
def test_teacher_test_scores_match_a_numpy_oracle(ro: kdstore.Store) -> None:
    got = {(r["teacher_id"], r["label_id"]): r for r in report.teacher_test_scores(ro).to_pylist()}
    want = _oracle_teacher_test_scores(ro)
    assert set(got) == set(want) and len(want) > 10
    for key, (tp, fp, fn, f1) in want.items():
        r = got[key]
        assert (r["tp"], r["fp"], r["fn"]) == (tp, fp, fn), key
        assert (r["f1"] is None) == (f1 is None)
        if f1 is not None:
            assert r["f1"] == pytest.approx(float(f1), abs=1e-12)
    assert any(v[0] > 0 for v in want.values())


@pytest.mark.slow  # the shared fixture store takes ~10 s to build (trust, two runs, a student)
def test_student_vs_teachers_numbers(page: str, ro: kdstore.Store, built: tuple[Path, dict[str, int]]) -> None:
    m = ro.models.load(built[1]["model"])
    rows = parse(page).tables["student-vs-teachers/vs-labels"]
    scores = report.teacher_test_scores(ro).to_pylist()
    for r, lab in zip(rows, m.labels, strict=True):
        assert r[0] == lab
        assert r[2] == f"{m.metrics['test']['labels'][lab]['f1']:.3f}"
        best = max((s["f1"] for s in scores if s["label"] == lab and s["f1"] is not None), default=None)
        assert r[4] == ("–" if best is None else f"{best:.3f}")


@pytest.mark.slow  # the shared fixture store takes ~10 s to build (trust, two runs, a student)
def test_hostile_teacher_name_is_escaped(page: str) -> None:
    assert EVIL not in page
    assert "<script" not in page and "<img src=x" not in page
    assert html_escaped(EVIL) in page
    p = parse(page)
    # shown as text, intact, wherever teachers are listed
    for key in ("teacher-metrics/label-metrics", "consensus/consensus", "trust/trust-calibration", "student-vs-teachers/vs-teachers"):
        assert EVIL in [row[0] for row in p.tables[key]], key
    assert p.tags.count("img") == len(p.images) == 6


def html_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#x27;")


def test_title_is_escaped_and_store_report_writes(tmp_path: Path) -> None:
    with kdstore.connect() as store:
        r = store.report(tmp_path / "a" / "r.html", title=EVIL)
    assert r.path == tmp_path / "a" / "r.html" and r.size == len(r.path.read_bytes())
    assert (r.run_id, r.model_id, r.images) == (None, None, 0)
    assert r.available == {k: k == "summary" for k in report.SECTIONS}
    text = r.path.read_text(encoding="utf-8")
    assert "<title>" + html_escaped(EVIL) + "</title>" in text
    assert "<script" not in text and "<img" not in text


def test_missing_sections_say_what_to_run() -> None:
    with kdstore.connect() as store:
        p = parse(report.render_html(store))  # an empty store
        assert list(p.sections) == list(report.SECTIONS)
        assert {k for k, v in p.sections.items() if v == "available"} == {"summary"}
        assert not p.images
        smallstore.build(store, n=60)
        for table in ("targets", "trust", "models", "runs"):
            store.run(f"DELETE FROM kd.{table}")
        p = parse(report.render_html(store))
    missing = {k for k, v in p.sections.items() if v == "missing"}
    assert missing == {"trust", "distillation-set", "student", "student-vs-teachers"}
    assert "kdstore trust STORE" in p.notes["trust"]
    assert "kdstore select STORE POLICY" in p.notes["distillation-set"]
    assert "kdstore train STORE" in p.notes["student"] and "kdstore train STORE" in p.notes["student-vs-teachers"]
    assert all(p.notes[k].startswith("Not available: ") for k in missing)
    assert len(p.images) == 2  # heatmaps and consensus
    assert len(p.tables["experts/experts"]) == 5


@pytest.mark.slow  # the shared fixture store takes ~10 s to build (trust, two runs, a student)
def test_choose_run_and_model(ro: kdstore.Store, built: tuple[Path, dict[str, int]]) -> None:
    ids = built[1]
    assert report.choose(ro) == (ids["run_trust"], ids["model"])
    assert report.choose(ro, run=ids["run_experts"]) == (ids["run_experts"], ids["model"])
    assert report.choose(ro, model=f"student_{ids['model']}") == (ids["run_trust"], ids["model"])
    with pytest.raises(KdstoreError, match=r"run 999 has no rows in kd\.targets"):
        report.choose(ro, run=999)
    with pytest.raises(KdstoreError, match="no student model"):
        report.choose(ro, model="nope")


def test_write_report_reads_each_view_once(built: tuple[Path, dict[str, int]], page: str, tmp_path: Path) -> None:
    """write_report renders once: every view it reads is queried by one statement, and the page is render_html's."""
    import re

    log: list[str] = []
    with kdstore.connect(built[0], read_only=True, trace=log.append) as store:
        r = report.write_report(store, tmp_path / "r.html")
    views = set(kdstore.sqlfiles.load_views().names())
    read = [v for q in log for v in set(re.findall(r"kd\.(\w+)", q)) if v in views]
    assert {"label_experts", "consensus", "consensus_z", "label_metrics"} <= set(read)
    assert sorted(read) == sorted(set(read)), "a view read more than once"
    stamp = re.compile(r"generated [^<]* by")
    text = r.path.read_text(encoding="utf-8")
    assert stamp.sub("", text) == stamp.sub("", page)
    assert r.available == {k: f'<section id="{k}" class="available">' in text for k in report.SECTIONS}
    assert all(r.available.values())


@pytest.fixture(scope="module")
def cli_report(built: tuple[Path, dict[str, int]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``kdstore report`` run once: (the file it wrote, what it printed)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("cli") / "sub" / "r.html"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["report", str(built[0]), "-o", str(out), "--run", str(built[1]["run_experts"]), "--title", "T & T"])
    assert code == 0
    return out, buf.getvalue()


@pytest.mark.slow
def test_cli_writes_the_report(built: tuple[Path, dict[str, int]], cli_report: tuple[Path, str],
                               capsys: pytest.CaptureFixture[str]) -> None:
    out, said = cli_report
    run = built[1]["run_experts"]
    assert f"wrote {out}" in said and "6 plots" in said and f"run {run}, student {built[1]['model']}" in said
    text = out.read_text(encoding="utf-8")
    assert "<title>T &amp; T</title>" in text
    p = parse(text)
    assert list(p.sections) == list(report.SECTIONS)
    kv = dict((r[0], r[1]) for r in p.tables["distillation-set/kv run"])
    assert (kv["run"], kv["policy"]) == (str(run), "experts")
    assert main(["report", str(built[0]), "-o", str(out), "--run", "999"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run 999 has no rows" in err[0]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    msg = ("chromium is not installed: the report's headless render test needs it "
           "(Debian: apt-get install -y --no-install-recommends chromium)")
    if os.environ.get("KDSTORE_REQUIRE_CHROMIUM") == "1":  # set by .ci/run, which installs chromium
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.mark.slow
def test_headless_chromium_renders_the_report(built: tuple[Path, dict[str, int]], page: str, tmp_path: Path) -> None:
    from PIL import Image

    chromium = find_chromium()
    html_path = tmp_path / "report.html"
    html_path.write_text(page, encoding="utf-8")
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={tmp_path / 'profile'}"]
    env = {**os.environ, "HOME": str(tmp_path)}
    shot = tmp_path / "out.png"
    done = subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,4000", html_path.as_uri()],
                          capture_output=True, text=True, timeout=180, env=env, check=False)
    assert shot.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    img = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert img.shape == (4000, 1280, 3)
    assert img.std() > 20  # not blank
    assert len(np.unique(img.reshape(-1, 3)[::7], axis=0)) > 100  # plots and text, not a flat page
    dom = subprocess.run([*base, "--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=180,
                         env=env, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    p = parse(dom.stdout)
    assert list(p.sections) == list(report.SECTIONS)
    assert len(p.images) == 6 and all(png_size(u)[0] > 200 for u in p.images)
    assert len(p.tables["experts/experts"]) == 5
    with kdstore.connect(built[0], read_only=True) as store:
        assert len(p.tables["teacher-metrics/label-metrics"]) == count(store, "SELECT count(*) FROM kd.label_metrics")
    assert EVIL in [row[0] for row in p.tables["consensus/consensus"]]
    assert "script" not in p.tags
