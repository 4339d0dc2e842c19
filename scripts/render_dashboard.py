"""Draw the Grafana dashboard's panels from a Prometheus, as a PNG (for the docs).

Grafana is not packaged for Debian 12 here, so this draws each panel of
``deploy/monitoring/grafana-dashboard.json`` itself: every target's expression is run as a
range query over the last ``--minutes`` and plotted in the panel's place of the grid.

    .venv/bin/pip install -e ".[docs]"
    .venv/bin/python scripts/render_dashboard.py --prometheus http://127.0.0.1:9090 \
        --out docs/monitoring/dashboard.png
"""

from __future__ import annotations

import argparse
import json
import math
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "monitoring" / "grafana-dashboard.json"
UNITS = {"s": "s", "Bps": "B/s", "reqps": "req/s", "ops": "ops/s", "bytes": "B"}


def range_query(prometheus: str, expr: str, start: float, end: float, step: float) -> Any:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{query}", timeout=30) as r:
        body = json.loads(r.read())
    if body["status"] != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def legend(template: str, labels: dict[str, str]) -> str:
    for key, value in labels.items():
        template = template.replace("{{" + key + "}}", value)
    return template.replace("{{", "").replace("}}", "") or "value"


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--rate-interval", default="30s", help="what $__rate_interval becomes")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    rows = math.ceil(len(panels) / 2)
    plt.style.use("dark_background")
    figure, axes = plt.subplots(rows, 2, figsize=(16, 2.6 * rows), squeeze=False)
    figure.suptitle(dashboard["title"], fontsize=15, x=0.01, ha="left")
    end = time.time()
    start = end - args.minutes * 60
    step = max((end - start) / 120, 1)
    for axis, panel in zip(axes.flat, panels, strict=False):
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        axis.set_title(panel["title"], fontsize=10, loc="left")
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.15)
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", args.rate_interval)
            expr = expr.replace("$job", ".+")
            for series in range_query(args.prometheus, expr, start, end, step)[:8]:
                points = [(float(t) - end, float(v)) for t, v in series["values"]]
                points = [(t / 60, v) for t, v in points if not math.isnan(v)]
                if not points:
                    continue
                if unit == "percentunit":
                    points = [(t, v * 100) for t, v in points]
                xs, ys = zip(*points, strict=True)
                name = legend(target.get("legendFormat", ""), series["metric"])
                axis.plot(xs, ys, linewidth=1.2, label=name)
        axis.set_ylabel("%" if unit == "percentunit" else UNITS.get(unit, ""), fontsize=7)
        axis.set_xlabel("minutes", fontsize=7)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6, loc="upper left", ncol=2, framealpha=0.3)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
