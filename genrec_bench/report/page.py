"""The self-contained HTML report: tables, references and plots in one page with no external files."""

from __future__ import annotations

import html

from genrec_bench.report.board import LEGEND, BoardRow, DatasetBoard
from genrec_bench.report.cells import best_per_model, fmt_cell, fmt_p, header, metric_title, ref_columns, row_head
from genrec_bench.report.charts import PALETTE, Series, svg_chart

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h2,.note,.legend{overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.5em 0 1em}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child,th.text{text-align:left}
table.leaderboard td{white-space:nowrap}
table.leaderboard td:first-child{white-space:normal;min-width:10em;max-width:22em}
table.leaderboard th{position:sticky;top:0;background:#fff}
td.best{font-weight:bold;background:#e8f5e9}
.pm{color:#888;font-size:.85em}
table.references{color:#555;font-size:.9em}
table.references td.text{text-align:left;min-width:14em}
.note{color:#a15c00}
.legend{color:#666;font-size:.85em;max-width:60em}
.scroll{overflow-x:auto;max-width:100%}
.plots{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
svg.plot{background:#fff;border:1px solid #eee;max-width:100%;height:auto}
details.all-rows{margin:1em 0}
details.all-rows summary{cursor:pointer;color:#1f5fa8}
"""


def _board_plots(board: DatasetBoard, i: int) -> str:
    """The board's four plots over the best row of each backend (ids `plot-<board>-{hit,ndcg,latency,
    training}`), and, when the board has more rows than backends, the same plots over every row in a
    collapsed <details> (ids with `-all`): twenty curves in one chart hide the comparison that matters."""
    best = best_per_model(board.rows)
    html_ = ['<div class="plots">', *_plot_set(board, best, f"plot-{i}"), "</div>"]
    if len(best) < len(board.rows):
        html_ += [f'<details class="all-rows"><summary>Plots with all {len(board.rows)} rows (above: the best '
                  f'row of each of the {len(best)} backends)</summary><div class="plots">',
                  *_plot_set(board, board.rows, f"plot-{i}", "-all"), "</div></details>"]
    return "".join(html_)


def _plot_set(board: DatasetBoard, rows: list[BoardRow], prefix: str, suffix: str = "") -> list[str]:
    styles = {r.label: (PALETTE[j % len(PALETTE)], (j // len(PALETTE)) % 2 == 1) for j, r in enumerate(rows)}

    def series(name: str, label: str, xs: list[float], ys: list[float]) -> Series:
        color, dashed = styles[label]
        return Series(name, xs, ys, color, dashed)

    def curve(kind: str) -> list[Series]:
        return [series(r.label, r.label, [float(k) for k in board.ks], [r.cells[f"{kind}@{k}"].mean for k in board.ks])
                for r in rows]

    latency = [series(r.label, r.label, [1000.0 / r.users_per_second], [r.cells[board.sig_metric].mean])
               for r in rows if r.users_per_second > 0]
    training = [series(r.label + (f" s{c.seed}" if len(r.curves) > 1 else ""), r.label, c.epochs, c.valid)
                for r in rows for c in r.curves]
    sig = metric_title(board.sig_metric)
    return [
        svg_chart(curve("hit"), svg_id=f"{prefix}-hit{suffix}", css_class="plot-hit", title="Hit@k over k",
                  xlabel="k", ylabel="Hit@k"),
        svg_chart(curve("ndcg"), svg_id=f"{prefix}-ndcg{suffix}", css_class="plot-ndcg", title="NDCG@k over k",
                  xlabel="k", ylabel="NDCG@k"),
        svg_chart(latency, svg_id=f"{prefix}-latency{suffix}", css_class="plot-latency", lines=False, log_x=True,
                  title=f"{sig} vs inference latency", xlabel="ms per user, log scale (1 / users per second)",
                  ylabel=sig),
        svg_chart(training, svg_id=f"{prefix}-training{suffix}", css_class="plot-training",
                  title="validation NDCG@10 during training", xlabel="epoch", ylabel="valid NDCG@10"),
    ]


def render_html(boards: list[DatasetBoard]) -> str:
    e = html.escape
    body = ["<h1>genrec-bench leaderboard</h1>"]
    if not boards:
        body.append('<p class="empty">No run records.</p>')
    for i, board in enumerate(boards):
        body.append(f'<section class="board" id="board-{i}" data-dataset="{e(board.dataset)}" '
                    f'data-fingerprint="{e(board.fingerprint)}"><h2>{e(board.title)}</h2>')
        body.extend(f'<p class="note">{e(n)}</p>' for n in board.notes)
        head = header(board)
        body.append(f'<div class="scroll"><table class="leaderboard" id="table-{i}"><thead><tr>'
                    + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>")
        for row in board.rows:
            tds = "".join(f"<td>{e(v)}</td>" for v in row_head(row))
            for c in board.columns:
                mean, pm = fmt_cell(row.cells[c])
                cls = ' class="best"' if row.cells[c].best else ""
                tds += f'<td{cls} data-metric="{c}">{mean} <span class="pm">{pm}</span></td>'
            p_cell = f"<td>{e(fmt_p(board, row))}</td>"
            body.append(f'<tr class="run" data-label="{e(row.label)}">{tds}{p_cell}</tr>')
        body.append("</tbody></table></div>")
        body.append(f'<p class="legend">{e(LEGEND.format(metric=metric_title(board.sig_metric)))}</p>')
        if board.references:
            cols = ref_columns(board.references)
            body.append(f'<h3>Published reference numbers for {e(board.dataset)} (not measured here)</h3>'
                        f'<div class="scroll"><table class="references" id="refs-{i}"><thead><tr><th>ref</th>'
                        + "".join(f"<th>{e(metric_title(c))}</th>" for c in cols)
                        + '<th class="text">source</th><th class="text">protocol</th></tr></thead><tbody>')
            for ref in board.references:
                vals = "".join(f"<td>{ref.metrics[c]:.4f}</td>" if c in ref.metrics else "<td>–</td>"
                               for c in cols)
                body.append(f'<tr class="ref"><td>ref: {e(ref.model)}</td>{vals}<td class="text">'
                            f'{e(ref.source)}</td><td class="text">{e(ref.protocol)}</td></tr>')
            body.append("</tbody></table></div><p class=\"legend\">Recall@k = Hit@k under leave-one-out.</p>")
        body.append(_board_plots(board, i))
        body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>genrec-bench leaderboard"
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
