"""The CI gate's verdict: is run A significantly worse than baseline B on one metric?

Worse only when the drop is significant, so noise between two runs never fails a build.
"""

from __future__ import annotations

from typing import Any

from genrec_bench.errors import GenrecError
from genrec_bench.metrics import PairedResult


def gate_verdict(rows: list[PairedResult], metric: str, alpha: float) -> dict[str, Any]:
    """{metric, alpha, diff, p_value, worse, verdict} for `metric` among paired comparisons A - B."""
    by_metric = {r.metric: r for r in rows}
    if metric.lower() not in by_metric:
        raise GenrecError(f"--fail-if-worse {metric!r} is not a metric of these runs; choose one of "
                          f"{', '.join(by_metric)}")
    r = by_metric[metric.lower()]
    worse = bool(r.diff < 0 and r.p_value < alpha)
    verdict = (f"{'FAIL' if worse else 'ok'}: {r.metric} A - B = {r.diff:+.4f}, p = {r.p_value:.3g} "
               f"({'significantly worse' if worse else 'not significantly worse'} at alpha {alpha:g})")
    return {"metric": r.metric, "alpha": alpha, "diff": r.diff, "p_value": r.p_value, "worse": worse,
            "verdict": verdict}
