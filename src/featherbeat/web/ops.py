"""Operations endpoints: ``/healthz`` (liveness for Render/docker) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app

from featherbeat.jobs.services import Services

bp = Blueprint("ops", __name__)

RECENT = 100  # finished jobs the duration / memory summaries look at


def _services() -> Services:
    return current_app.extensions["featherbeat"]


@bp.get("/healthz")
def healthz() -> Response:
    try:
        counts = _services().store.counts()
    except Exception as exc:  # the store is the service: without it we are not healthy
        body = {
            "status": "unavailable",
            "error": {"code": "store_unavailable", "message": f"job store: {exc}"},
        }
        return Response(json.dumps(body), status=503, mimetype="application/json")
    body = {"status": "ok", "jobs": counts}
    return Response(
        json.dumps(body), mimetype="application/json", headers={"Cache-Control": "no-store"}
    )


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    pick = {q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.9)}
    return {"0.5": pick[0.5], "0.9": pick[0.9], "1": ordered[-1]}


@bp.get("/metrics")
def metrics() -> Response:
    store = _services().store
    counts = store.counts()
    counters = store.counters()
    recent = store.recent_finished(RECENT)
    lines = [
        "# HELP featherbeat_queue_depth Jobs waiting for an analysis slot.",
        "# TYPE featherbeat_queue_depth gauge",
        f"featherbeat_queue_depth {counts['queued']}",
        "# HELP featherbeat_jobs Jobs by state.",
        "# TYPE featherbeat_jobs gauge",
        *(f'featherbeat_jobs{{status="{k}"}} {v}' for k, v in counts.items()),
        "# HELP featherbeat_uploads_total Uploads by outcome (accepted, cached, joined).",
        "# TYPE featherbeat_uploads_total counter",
        *(
            f'featherbeat_uploads_total{{outcome="{k.split(":", 1)[1]}"}} {v}'
            for k, v in sorted(counters.items())
            if k.startswith("uploads:")
        ),
        "# HELP featherbeat_uploads_rejected_total Uploads rejected, by reason.",
        "# TYPE featherbeat_uploads_rejected_total counter",
        *(
            f'featherbeat_uploads_rejected_total{{reason="{k.split(":", 1)[1]}"}} {v}'
            for k, v in sorted(counters.items())
            if k.startswith("rejected:")
        ),
    ]
    # Both summaries over the same jobs: the recent analyses that ran to the end. A failed
    # job has a peak but no analysis time, and counting it in one summary only made the two
    # _count lines disagree (its peak is in its job.failed log line).
    ran = [
        j for j in recent if j.status == "done" and None not in (j.analysis_seconds, j.peak_rss_mb)
    ]
    for name, help_text, values in (
        (
            "analysis_seconds",
            "Analysis wall time of the last finished analyses.",
            [float(j.analysis_seconds or 0.0) for j in ran],
        ),
        (
            "analysis_peak_rss_mb",
            "Peak memory (RSS, MB) of the same analyses.",
            [float(j.peak_rss_mb or 0.0) for j in ran],
        ),
    ):
        lines += [f"# HELP featherbeat_{name} {help_text}", f"# TYPE featherbeat_{name} summary"]
        lines += [
            f'featherbeat_{name}{{quantile="{q}"}} {v:g}' for q, v in _quantiles(values).items()
        ]
        lines += [
            f"featherbeat_{name}_sum {sum(values):g}",
            f"featherbeat_{name}_count {len(values)}",
        ]
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
