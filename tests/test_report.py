"""Leaderboards: grouping by split fingerprint, best marking, paired tests, every output format."""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from rich.console import Console
from scipy import stats

from genrec_bench.errors import GenrecError
from genrec_bench.report import (
    compare_runs,
    leaderboard,
    load_references,
    render,
)
from genrec_bench.report.charts import Series, chart_figure
from genrec_bench.results import RunRecord

GOLDEN = Path(__file__).parent / "golden" / "leaderboard.md"
CHROMIUM = Path("/usr/bin/chromium")


def record(label: str, ranks: list[int], *, seed: int = 0, fingerprint: str = "fpA", dataset: str = "beauty",
           users: list[int] | None = None, ks: tuple[int, ...] = (1, 5, 10), ups: float = 0.0,
           history: list[float] = ()) -> RunRecord:
    return RunRecord(
        run_id=f"{label}-{dataset}-{fingerprint}-s{seed}", model=label.split("[")[0], label=label, dataset=dataset,
        split="test", fingerprint=fingerprint, seed=seed, ks=list(ks), metrics={},
        users=list(range(len(ranks))) if users is None else users, ranks=list(ranks), config={},
        fit={"seconds": 1.0, "history": [{"epoch": e + 1, "loss": 1.0, "valid_ndcg@10": v}
                                          for e, v in enumerate(history)]},
        users_per_second=ups, created="2026-01-01T00:00:00+00:00")


# Hand-made ranks on 12 users: "good" finds more targets in the top 10, "sharp" more at rank 1.
GOOD = [1, 2, 3, 2, 5, 8, 0, 4, 2, 9, 3, 1]
SHARP = [1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 11]
WEAK = [0, 0, 7, 0, 0, 9, 0, 0, 0, 0, 0, 0]


def ndcg10(ranks: list[int]) -> np.ndarray:
    return np.array([1 / math.log2(r + 1) if 0 < r <= 10 else 0.0 for r in ranks])


def fixed_records() -> list[RunRecord]:
    return [
        record("sasrec", GOOD, ups=400.0, history=[0.1, 0.2, 0.25]),
        record("tiger[letter]", SHARP, seed=0, ups=50.0, history=[0.05, 0.12]),
        record("tiger[letter]", [1, 1, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0], seed=1, ups=60.0, history=[0.04, 0.1]),
        record("pop", WEAK, ups=5000.0),
        record("pop", WEAK[::-1], dataset="toys", fingerprint="fpT"),
    ]


def test_boards_group_by_fingerprint_never_mixing() -> None:
    recs = [record("a", GOOD, fingerprint="fp1"), record("b", SHARP, fingerprint="fp2"),
            record("c", WEAK, fingerprint="fp1"), record("a", GOOD, dataset="toys", fingerprint="fp1")]
    boards = leaderboard(recs)
    assert [(b.dataset, b.fingerprint, sorted(r.label for r in b.rows)) for b in boards] == [
        ("beauty", "fp1", ["a", "c"]), ("beauty", "fp2", ["b"]), ("toys", "fp1", ["a"])]
    assert "fingerprint 1 of 2" in boards[0].notes[0] and "fingerprint 2 of 2" in boards[1].notes[0]
    assert boards[2].notes == []
    md = render(boards, "markdown")
    assert md.count("### beauty") == 2 and "fingerprint fp1" in md and "fingerprint fp2" in md


def test_best_marked_per_column_and_rows_sorted() -> None:
    (board,) = leaderboard([record("good", GOOD), record("sharp", SHARP), record("weak", WEAK)])
    assert [r.label for r in board.rows] == ["good", "sharp", "weak"] and board.best_label == "good"
    rows = {r.label: r for r in board.rows}
    assert rows["sharp"].cells["hit@1"].best and not rows["good"].cells["hit@1"].best  # 5/12 vs 2/12
    assert rows["good"].cells["hit@10"].best and not rows["sharp"].cells["hit@10"].best
    assert rows["good"].cells["hit@1"].mean == pytest.approx(2 / 12)
    assert rows["good"].cells["ndcg@10"].mean == pytest.approx(ndcg10(GOOD).mean())
    assert not any(c.best for c in rows["weak"].cells.values())


def test_tied_best_marks_both() -> None:
    (board,) = leaderboard([record("x", GOOD), record("y", GOOD[::-1])])
    assert all(r.cells["hit@10"].best for r in board.rows)


def test_paired_p_value_matches_hand_computation() -> None:
    (board,) = leaderboard([record("good", GOOD), record("weak", WEAK)])
    weak = board.rows[1]
    expected = stats.ttest_rel(ndcg10(WEAK), ndcg10(GOOD))
    assert weak.p_value == pytest.approx(expected.pvalue) and weak.p_value < 0.05
    assert weak.diff == pytest.approx((ndcg10(WEAK) - ndcg10(GOOD)).mean())
    assert board.rows[0].p_value is None and weak.n_paired == 12


def test_rows_are_paired_with_the_baseline_backend_too() -> None:
    """Where SASRec is not the best row, each row still gets its own paired test against SASRec."""
    (board,) = leaderboard([record("good", GOOD), record("sasrec", SHARP), record("weak", WEAK)])
    assert board.best_label == "good" and board.baseline_label == "sasrec"
    rows = {r.label: r for r in board.rows}
    expected = stats.ttest_rel(ndcg10(WEAK), ndcg10(SHARP))
    assert rows["weak"].base_p == pytest.approx(expected.pvalue)
    assert rows["weak"].base_diff == pytest.approx((ndcg10(WEAK) - ndcg10(SHARP)).mean())
    assert rows["good"].base_diff == pytest.approx((ndcg10(GOOD) - ndcg10(SHARP)).mean())
    assert rows["sasrec"].base_p is None
    text = render([board], "markdown")
    assert "| vs sasrec (NDCG@10) |" in text and "| baseline |" in text
    (alone,) = leaderboard([record("good", GOOD), record("weak", WEAK)])
    assert alone.baseline_label == "" and "vs sasrec" not in render([alone], "markdown").split("_±")[0]


def test_seeds_are_averaged_per_user_and_intervals_over_seeds() -> None:
    s1 = [0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]
    (board,) = leaderboard([record("good", GOOD), record("m", WEAK, seed=0), record("m", s1, seed=1)])
    row = next(r for r in board.rows if r.label == "m")
    assert row.seeds == [0, 1] and row.interval == "seeds"
    seed_means = np.array([ndcg10(WEAK).mean(), ndcg10(s1).mean()])
    half = stats.t.ppf(0.975, 1) * seed_means.std(ddof=1) / math.sqrt(2)
    cell = row.cells["ndcg@10"]
    assert (cell.mean, cell.low, cell.high) == pytest.approx((seed_means.mean(), seed_means.mean() - half,
                                                               seed_means.mean() + half))
    averaged = (ndcg10(WEAK) + ndcg10(s1)) / 2
    assert row.p_value == pytest.approx(stats.ttest_rel(averaged, ndcg10(GOOD)).pvalue)


def test_one_seed_gets_bootstrap_interval_around_mean() -> None:
    (board,) = leaderboard([record("good", GOOD)])
    cell = board.rows[0].cells["hit@10"]
    assert board.rows[0].interval == "bootstrap" and cell.low < cell.mean < cell.high


def test_pairs_only_shared_users_in_user_order() -> None:
    # same per-user values, listed in another user order and with an extra user: still a perfect pairing
    users = list(range(12))
    shuffled = users[::-1] + [99]
    (board,) = leaderboard([record("a", GOOD, users=users), record("b", GOOD[::-1] + [1], users=shuffled)])
    other = board.rows[1]
    assert other.n_paired == 12 and other.diff == pytest.approx(0.0) and other.p_value == 1.0


def test_newest_run_of_a_label_and_seed_wins() -> None:
    old = record("a", WEAK)
    new = record("a", GOOD)
    new.run_id, new.created = "a-new", "2026-02-01T00:00:00+00:00"
    (board,) = leaderboard([new, old])
    assert board.rows[0].cells["hit@10"].mean == pytest.approx(11 / 12)
    assert any("superseded by a-new" in n for n in board.notes)


def test_references_attach_to_their_dataset_only() -> None:
    refs = load_references()
    assert len(refs) == 19
    tiger_beauty = next(r for r in refs if r.model == "TIGER" and r.dataset == "beauty")
    assert tiger_beauty.metrics == {"hit@5": 0.0454, "ndcg@5": 0.0321, "hit@10": 0.0648, "ndcg@10": 0.0384}
    llada = next(r for r in refs if r.dataset == "instruments")
    assert llada.metrics == {"ndcg@1": 0.0452, "ndcg@10": 0.0529, "hit@10": 0.061}
    boards = leaderboard(fixed_records(), refs)
    assert [len(b.references) for b in boards] == [8, 4]
    assert all(r.dataset == b.dataset for b in boards for r in b.references)
    assert all(not r.label.startswith("ref") for b in boards for r in b.rows)


def test_markdown_matches_golden_file() -> None:
    text = render(leaderboard(fixed_records(), load_references()), "markdown")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "rerun with UPDATE_GOLDEN=1 after an intended change"
    assert "| **sasrec** |" in text and "| ref: TIGER |" in text and "tiger[letter]" in text


def test_json_is_strict_and_carries_the_numbers() -> None:
    boards = leaderboard(fixed_records(), load_references())

    def no_nan(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    doc = json.loads(render(boards, "json"), parse_constant=no_nan)
    assert doc["schema"] == 1 and len(doc["boards"]) == len(boards)
    for got, board in zip(doc["boards"], boards, strict=True):
        assert (got["dataset"], got["fingerprint"], got["best_label"]) == (board.dataset, board.fingerprint,
                                                                          board.best_label)
        for got_row, row in zip(got["rows"], board.rows, strict=True):
            assert got_row["label"] == row.label and got_row["p_value"] == row.p_value
            assert {c: v["mean"] for c, v in got_row["cells"].items()} == {c: v.mean for c, v in row.cells.items()}
        assert [r["model"] for r in got["references"]] == [r.model for r in board.references]


@pytest.mark.parametrize("width", [250, 80, 60])
def test_terminal_table_fits_without_truncating(width: int) -> None:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(render(leaderboard(fixed_records()), "table"))
    out = console.file.getvalue()
    assert "tiger[letter]" in out and "best" in out and "…" not in out  # bracketed labels survive rich markup
    assert all(h in out for h in ("Hit@1", "Hit@10", "NDCG@5", "NDCG@10", "MRR", "0.5272", "±0.1586"))
    assert max(map(len, out.splitlines())) <= width
    assert "short@10" in out and "id table" in out  # in a table of their own
    tables = sum(line.startswith(" model ") and "seed(s)" in line for line in out.splitlines())
    assert (tables == 2) == (width == 250)  # two boards: one table each when wide, split over several when narrow


def test_terminal_table_shows_references_apart() -> None:
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(render(leaderboard(fixed_records(), load_references()), "table"))
    out = console.file.getvalue()
    assert "published reference numbers for beauty (not measured here)" in out and "ref: TIGER" in out


def test_unknown_format_is_a_user_error() -> None:
    with pytest.raises(GenrecError, match="unknown report format 'pdf'"):
        render([], "pdf")


def test_compare_runs() -> None:
    a, b = record("a", GOOD), record("b", WEAK)
    results = compare_runs(a, b, (1, 10))
    assert [r.metric for r in results] == ["hit@1", "ndcg@1", "hit@10", "ndcg@10", "mrr@10"]
    ndcg = results[3]
    assert ndcg.diff == pytest.approx((ndcg10(GOOD) - ndcg10(WEAK)).mean())
    with pytest.raises(GenrecError, match="different splits"):
        compare_runs(a, record("c", WEAK, fingerprint="fpB"), (10,))
    with pytest.raises(GenrecError, match="different users"):
        compare_runs(a, record("c", WEAK, users=list(range(12))[::-1]), (10,))


class _Dom(HTMLParser):
    """Counts what a browser test looks for: leaderboard rows, reference rows, svg plots by id."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.duplicate_ids: set[str] = set()
        self.run_rows: list[str] = []
        self.ref_rows = 0
        self.svgs: list[str] = []
        self.series = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            if a["id"] in self.ids:
                self.duplicate_ids.add(a["id"] or "")
            self.ids.add(a["id"] or "")
        if tag == "tr" and a.get("class") == "run":
            self.run_rows.append(a.get("data-label") or "")
        self.ref_rows += tag == "tr" and a.get("class") == "ref"
        if tag == "svg":
            self.svgs.append(a.get("id") or "")
        self.series += tag == "g" and "-series-" in (a.get("id") or "")


def _check_dom(page: str) -> None:
    dom = _Dom()
    dom.feed(page)
    assert dom.run_rows == ["sasrec", "tiger[letter]", "pop", "pop"]
    assert dom.ref_rows == 8 + 4
    assert {"board-0", "board-1", "table-0", "table-1", "refs-0", "refs-1"} <= dom.ids
    plots = [f"plot-{i}-{kind}" for i in range(2) for kind in ("hit", "ndcg", "latency", "training")]
    assert dom.svgs == plots
    assert not dom.duplicate_ids  # every chart's inner ids carry its own prefix
    assert dom.series >= 3 + 3 + 3  # board 0: hit and ndcg curves and latency points of three rows


def test_html_is_self_contained_with_table_and_plots() -> None:
    page = render(leaderboard(fixed_records(), load_references()), "html")
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "tiger[letter]" in page and 'class="leaderboard"' in page
    _check_dom(page)
    assert 'id="plot-1-latency"' in page and ">no data</text>" in page  # toys has no timing: empty plot, same id
    latency = page[page.index('id="plot-0-latency"'):].split("</svg>")[0]
    assert all(f">{t}</text>" in latency for t in ("0.1", "1", "10", "100"))  # 0.2, 2.5, 18 ms: whole decades
    assert latency.count('<g id="plot-0-latency-series-') == 3
    assert all(f">{label}</text>" in latency for label in ("sasrec", "tiger[letter]", "pop"))  # legend as text
    assert render(leaderboard(fixed_records(), load_references()), "html") == page  # the same bytes every time


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (CI: apt-get install -y chromium)")
def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(leaderboard(fixed_records(), load_references()), "html"))
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}",
           "--dump-dom", page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True)
    assert "<svg" in out.stdout
    _check_dom(out.stdout)
    shutil.rmtree(tmp_path / "p", ignore_errors=True)


def with_ids(rec: RunRecord, semantic_ids: str, digest: str | None = None, **tree: str) -> RunRecord:
    rec.fit["extra"] = {"semantic_ids": semantic_ids, **({"sid_digest": digest} if digest else {}), **tree}
    return rec


def test_id_table_names_the_tokenisation_of_every_record_kind() -> None:
    assert record("sasrec", GOOD).id_table == ""
    assert with_ids(record("t", GOOD), "file(x.json)", "abc123").id_table == "abc123"
    assert with_ids(record("t", GOOD), "letter").id_table == "letter"  # older record, LETTER's file
    assert with_ids(record("t", GOOD), "rkmeans(attributes)").id_table == "unshipped"
    mindrec = with_ids(record("m", GOOD), "letter", tree_source="kmeans")
    assert mindrec.id_table == "letter+tree unshipped"
    assert with_ids(record("m", GOOD), "x", "abc", tree_source="file(t)", tree_digest="d1").id_table == "abc+tree d1"
    assert with_ids(record("m", GOOD), "x", "abc", tree_source="subsumption").id_table == "abc+tree subsumption"
    rpg = record("rpg", GOOD)
    rpg.fit["extra"] = {"codes_source": "file(toys-rpg-15ce58c73da4.json)", "codes_digest": "15ce58c73da4"}
    assert rpg.id_table == "15ce58c73da4"  # RPG's OPQ codes are its tokenisation


def test_rows_on_different_id_tables_are_marked() -> None:
    best = with_ids(record("tiger", GOOD), "file(a)", "aaa")
    same = with_ids(record("tiger[b]", SHARP), "file(a)", "aaa")
    other = with_ids(record("tiger[c]", WEAK), "rkmeans(attributes)")  # unshipped: never known equal
    (board,) = leaderboard([best, same, other, record("sasrec", WEAK)])
    text = render([board], "markdown")
    rows = {line.split(" | ")[0].strip("| *"): line for line in text.splitlines() if line.startswith("| ")}
    p_best = {label: line.split(" | ")[-2] for label, line in rows.items()}  # the last column pairs with sasrec
    assert p_best["tiger[c]"].endswith("†") and not p_best["tiger[b]"].endswith("†")
    assert not p_best["sasrec"].endswith("†")  # no semantic ids: nothing to mix up
    assert not rows["tiger[b]"].endswith("† |")  # no semantic ids on the baseline either
    assert " | aaa | " in rows["tiger[b]"] and " | unshipped | " in rows["tiger[c]"]
    assert any("rows use 2 semantic-ID tables (aaa; unshipped)" in n for n in board.notes)
    (single,) = leaderboard([best, same])
    assert not any("semantic-ID tables" in n for n in single.notes)


def test_short_lists_and_versions_reach_the_report() -> None:
    a, b = record("tiger", GOOD), record("tiger", SHARP, seed=1)
    a.short_lists, b.short_lists = {"10": 2, "5": 1}, {"10": 3, "5": 0}
    a.env = {"torch": "2.13.0", "numpy": "2.4.6", "hostname": "x"}
    b.env = {"torch": "2.13.0", "numpy": "2.5.0"}
    old = record("sasrec", WEAK)
    (board,) = leaderboard([a, b, old])
    tiger = next(r for r in board.rows if r.label == "tiger")
    assert tiger.short_lists == 5 and next(r for r in board.rows if r.label == "sasrec").short_lists is None
    doc = json.loads(render([board], "json"))
    row = next(r for r in doc["boards"][0]["rows"] if r["label"] == "tiger")
    assert row["versions"] == {"torch": "2.13.0", "numpy": "2.4.6, 2.5.0"}
    assert row["short_lists"] == 5


def many_records(n: int = 24) -> list[RunRecord]:
    """`n` labelled rows over three backends, with labels as long as real ablation labels."""
    rng = np.random.default_rng(0)
    models = ("sasrec", "tiger", "mindrec")
    records = [record(f"{models[j % 3]} (ablation {j}, item head on 2 levels, weight decay 0.1, beam 20)",
                      list(rng.integers(0, 15, size=40)), ups=100.0 + j, history=[0.01 * j, 0.02 * j])
               for j in range(n)]
    for j, rec in enumerate(records):
        rec.model = models[j % 3]
    return records


def test_html_plots_the_best_row_per_backend_with_every_row_one_click_away() -> None:
    page = render(leaderboard(many_records()), "html")
    dom = _Dom()
    dom.feed(page)
    assert len(dom.run_rows) == 24
    assert dom.svgs == [f"plot-0-{kind}{suffix}" for suffix in ("", "-all")
                        for kind in ("hit", "ndcg", "latency", "training")]
    default, every = page.split('<details class="all-rows">')
    assert len(re.findall(r'<g id="plot-0-\w+-series-', default)) == 4 * 3
    assert len(re.findall(r'<g id="plot-0-\w+-all-series-', every)) == 4 * 24
    assert "all 24 rows" in every and "<script" not in page


def test_legends_sit_below_the_plot_area() -> None:
    """However many series, the legend lies below the axes and inside the figure."""
    for n in (1, 5, 24):
        series = [Series(f"model-{i}[beam_width=20]", [1, 5, 10], [0.01 * i, 0.02 * i, 0.03 * i]) for i in range(n)]
        fig = chart_figure(series, title="NDCG@k over k", xlabel="k", ylabel="NDCG@k")
        renderer = FigureCanvasAgg(fig).get_renderer()
        axes = fig.axes[0].get_tightbbox(renderer)
        legend = fig.legends[0].get_window_extent(renderer)
        assert legend.y1 < axes.y0 and legend.y0 >= 0 and legend.x1 <= fig.bbox.x1


OVERFLOW_PROBE = """<script>
document.querySelectorAll('details').forEach(d => d.open = true);
const root = document.documentElement, box = document.querySelector('.scroll');
document.body.dataset.pageOverflow = String(root.scrollWidth > root.clientWidth);
document.body.dataset.tableScrolls = String(box.scrollWidth > box.clientWidth);
</script></body>"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (CI: apt-get install -y chromium)")
def test_html_with_many_rows_has_no_horizontal_page_overflow(tmp_path: Path) -> None:
    """At a narrow window the 24-row table scrolls inside its own box and nothing widens the page."""
    page = tmp_path / "report.html"
    page.write_text(render(leaderboard(many_records(), load_references()), "html").replace("</body>",
                                                                                            OVERFLOW_PROBE))
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}",
           "--window-size=800,1000", "--dump-dom", page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True).stdout
    body = re.search(r"<body([^>]*)>", out).group(1)
    assert 'data-table-scrolls="true"' in body  # the table is wider than the window: the check has teeth
    assert 'data-page-overflow="false"' in body
    shutil.rmtree(tmp_path / "p", ignore_errors=True)
