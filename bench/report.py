"""Turn regbench's JSON for each registry into one comparison table (markdown).

Every figure is regbench's median over the repetitions. The ratio column is oriented so
that a value above 1 means Dockyard did better: Dockyard/registry:2 for rates (higher is
better), registry:2/Dockyard for times, CPU cost and memory (lower is better).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.servers import DOCKYARD, DOCKYARD_METRICS, REGISTRY2, TITLES

GiB = 1 << 30
MiB = 1 << 20

Scenario = dict[str, Any]
Rep = dict[str, Any]


@dataclass(frozen=True)
class Cost:
    """Server CPU seconds per unit of work, scaled for display: the median over the
    repetitions, or with ``pooled`` all their CPU over all their work (for work that takes
    less than the 10 ms tick CPU time is counted in)."""

    unit: str
    work: Callable[[Scenario, Rep], float | None]
    scale: float = 1.0
    pooled: bool = False


@dataclass(frozen=True)
class Figure:
    key: str  # regbench's key under "scenarios"
    scenario: str  # regbench's scenario name (for --scenarios and its "<name>_error" keys)
    label: Callable[[Scenario], str]
    unit: str
    value: Callable[[Scenario], float | None]
    higher_is_better: bool
    cost: Cost | None = None
    note: Callable[[Scenario], str] | None = None


def _median_of(field: str) -> Callable[[Scenario], float | None]:
    def value(sc: Scenario) -> float | None:
        values = [r[field] for r in sc.get("reps", []) if r.get(field) is not None]
        return float(statistics.median(values)) if values else None

    return value


def _median(sc: Scenario) -> float | None:
    value = sc.get("median")
    return float(value) if value is not None else None


def _size(sc: Scenario) -> str:
    size = int(sc.get("size") or 0)
    return f"{size // GiB} GiB" if size >= GiB and size % GiB == 0 else f"{size // MiB} MiB"


def _fixed(text: str) -> Callable[[Scenario], str]:
    return lambda _sc: text


def _sized(template: str) -> Callable[[Scenario], str]:
    return lambda sc: template.format(_size(sc))


def _counted(template: str, field: str) -> Callable[[Scenario], str]:
    return lambda sc: template.format(sc.get(field, "?"))


PER_GIB = Cost("CPU s/GiB", lambda sc, _r: (sc.get("size") or 0) / GiB or None)
PER_1K_REQ = Cost("CPU s/1k req", lambda _sc, r: (r.get("requests") or 0) / 1000 or None)
PER_IMAGE = Cost("CPU ms/image", lambda sc, _r: sc.get("images") or None, scale=1000.0)
PER_LISTING = Cost("CPU ms/listing", lambda _sc, _r: 1.0, scale=1000.0, pooled=True)


def _listing_note(sc: Scenario) -> str:
    reps = [r for r in sc.get("reps", []) if r.get("count") is not None]
    if not reps:
        return ""
    last = reps[-1]
    note = f"{last['count']} in {last['pages']} page(s)"
    errors = [r["error"] for r in sc.get("reps", []) if r.get("error")]
    if errors:
        note += f"; {len(errors)} rep(s) failed: {errors[0][:80]}"
    return note


def _request_errors(sc: Scenario) -> str:
    bad = sum(int(r.get("non2xx") or 0) + int(r.get("socket_errors") or 0) for r in sc["reps"])
    return f"{bad} non-2xx/socket errors" if bad else ""


FIGURES: list[Figure] = [
    Figure(
        "push",
        "push",
        lambda sc: f"push {sc.get('images')} images, {sc.get('concurrency')} concurrent",
        "images/s",
        _median,
        True,
        PER_IMAGE,
    ),
    Figure("push", "push", _fixed("push: image latency p99"), "ms", _median_of("p99_ms"), False),
    Figure(
        "pull",
        "pull",
        lambda sc: f"pull {sc.get('images')} images, {sc.get('concurrency')} concurrent",
        "images/s",
        _median,
        True,
        PER_IMAGE,
    ),
    Figure("pull", "pull", _fixed("pull: image latency p99"), "ms", _median_of("p99_ms"), False),
]
for _key, _what in (
    ("wrk_manifest", "GET manifest by tag (wrk -c64)"),
    ("ab_head_blob", "HEAD blob (ab -k -c64)"),
    ("wrk_v2", "GET /v2/ (wrk -c64)"),
):
    FIGURES.append(
        Figure(
            _key,
            "wrk",
            _fixed(_what),
            "req/s",
            _median,
            True,
            PER_1K_REQ,
            _request_errors,
        )
    )
    FIGURES.append(
        Figure(
            _key,
            "wrk",
            _fixed(_what.split(" (")[0] + ": latency p99"),
            "ms",
            _median_of("lat_p99_ms"),
            False,
        )
    )
for _key, _scenario, _what in (
    ("mono_upload", "mono", "monolithic upload {} (aiohttp)"),
    ("mono_upload_curl", "mono", "monolithic upload {} (curl -T)"),
    ("chunked_upload", "chunked", "chunked upload {} (16 MiB PATCHes)"),
    ("download", "download", "blob download {} (aiohttp)"),
    ("download_curl", "download", "blob download {} (curl)"),
):
    FIGURES.append(
        Figure(
            _key,
            _scenario,
            _sized(_what),
            "MB/s",
            _median,
            True,
            PER_GIB,
        )
    )
for _key, _scenario, _what, _count in (
    ("tags_full", "tags", "tags/list, {} tags, one request", "tags"),
    ("tags_paged", "tags", "tags/list, {} tags, n=100 pages", "tags"),
    ("catalog_default", "catalog", "_catalog, {} repos, default paging", "repos"),
    ("catalog_paged", "catalog", "_catalog, {} repos, n=100 pages", "repos"),
    ("catalog_one", "catalog", "_catalog, {} repos, n=all", "repos"),
):
    FIGURES.append(
        Figure(
            _key,
            _scenario,
            _counted(_what, _count),
            "ms",
            _median,
            False,
            PER_LISTING,
            _listing_note,
        )
    )

SCENARIO_KEYS: dict[str, list[str]] = {}
for _figure in FIGURES:
    keys = SCENARIO_KEYS.setdefault(_figure.scenario, [])
    if _figure.key not in keys:
        keys.append(_figure.key)


def cpu_cost(sc: Scenario, cost: Cost) -> float | None:
    measured: list[tuple[float, float]] = []
    for rep in sc.get("reps", []):
        cpu = rep.get("server_cpu_s")
        work = cost.work(sc, rep)
        if cpu is not None and work:
            measured.append((cpu, work))
    if not measured:
        return None
    if cost.pooled:
        return sum(cpu for cpu, _ in measured) / sum(work for _, work in measured) * cost.scale
    return float(statistics.median([cpu / work * cost.scale for cpu, work in measured]))


def ratio(dockyard: float | None, registry2: float | None, higher_is_better: bool) -> float | None:
    if dockyard is None or registry2 is None or dockyard <= 0 or registry2 <= 0:
        return None
    return dockyard / registry2 if higher_is_better else registry2 / dockyard


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@dataclass
class Row:
    label: str
    unit: str
    values: dict[str, float | None]
    failed: dict[str, str]
    higher_is_better: bool
    cost_unit: str = ""
    costs: dict[str, float | None] | None = None
    note: str = ""
    suspect: bool = False  # a target's scenario partly failed: no ratio

    def cells(self, targets: list[str]) -> list[str]:
        cells = [self.label, self.unit]
        for target in targets:
            cells.append("FAILED" if target in self.failed else fmt(self.values.get(target)))
        cells.append(self._ratio(self.values))
        cells.append(self.cost_unit)
        for target in targets:
            cost = (self.costs or {}).get(target)
            cells.append("" if not self.cost_unit else fmt(cost))
        cells.append(self._ratio(self.costs or {}, lower=True) if self.cost_unit else "")
        if DOCKYARD_METRICS in targets:
            cells.append(self._metrics_ratio())
        cells.append(self.note)
        return cells

    def _metrics_ratio(self) -> str:
        """Dockyard with metrics against Dockyard without, > 1 when metrics cost nothing."""
        if self.failed or self.suspect:
            return "-"
        on, off = self.values.get(DOCKYARD_METRICS), self.values.get(DOCKYARD)
        return fmt_ratio(ratio(on, off, self.higher_is_better))

    def _ratio(self, values: dict[str, float | None], lower: bool = False) -> str:
        if self.failed or self.suspect:
            return "-"
        better = False if lower else self.higher_is_better
        return fmt_ratio(ratio(values.get(DOCKYARD), values.get(REGISTRY2), better))

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "values": self.values,
            "failed": self.failed,
            "higher_is_better": self.higher_is_better,
            "ratio": ratio(
                self.values.get(DOCKYARD), self.values.get(REGISTRY2), self.higher_is_better
            ),
            "cost_unit": self.cost_unit,
            "costs": self.costs,
            "cost_ratio": ratio(
                (self.costs or {}).get(DOCKYARD), (self.costs or {}).get(REGISTRY2), False
            ),
            "metrics_ratio": ratio(
                self.values.get(DOCKYARD_METRICS),
                self.values.get(DOCKYARD),
                self.higher_is_better,
            ),
            "note": self.note,
        }


def scenario_rows(results: dict[str, dict[str, Any]], selected: list[str]) -> list[Row]:
    """One row per figure of every selected scenario, values per target."""
    rows = []
    targets = list(results)
    for figure in FIGURES:
        if figure.scenario not in selected:
            continue
        values: dict[str, float | None] = {}
        costs: dict[str, float | None] = {}
        failed: dict[str, str] = {}
        notes = []
        label = ""
        suspect = False
        for target in targets:
            res = results[target]
            sc = res["scenarios"].get(figure.key)
            failure = res["failures"].get(figure.scenario)
            if sc is None or (failure and figure.value(sc) is None):
                failed[target] = failure or "no result"
                values[target] = None
                continue
            label = label or figure.label(sc)
            values[target] = figure.value(sc)
            if values[target] is None:
                failed[target] = "no value"
            if figure.cost:
                costs[target] = cpu_cost(sc, figure.cost)
            note = figure.note(sc) if figure.note else ""
            if failure:
                note = (note + "; " if note else "") + "partly failed"
                suspect = True
            if note:
                notes.append((target, note))
        if not label:
            label = figure.label({})
        shown = {n for _, n in notes}
        if len(shown) == 1 and len(notes) == len(targets) and not failed:
            note_text = notes[0][1]  # the same for everyone
        else:
            note_text = "; ".join(f"{TITLES[t]}: {n}" for t, n in notes)
        rows.append(
            Row(
                label,
                figure.unit,
                values,
                failed,
                figure.higher_is_better,
                figure.cost.unit if figure.cost else "",
                costs if figure.cost else None,
                note_text,
                suspect,
            )
        )
    return rows


def memory_rows(results: dict[str, dict[str, Any]]) -> list[Row]:
    specs = [
        ("server PSS idle, whole process tree, after start", "idle_pss_kb", "goal < 100 MiB"),
        ("server RSS idle, before the first scenario", "idle_rss_kb", ""),
        ("server RSS peak during push (sampled 20/s)", "push_peak_rss_kb", ""),
        ("server peak RSS, sum of VmHWM at end of run", "hwm_kb", "upper bound"),
    ]
    rows = []
    for label, key, note in specs:
        values: dict[str, float | None] = {}
        for target, res in results.items():
            kb = res["memory"].get(key)
            values[target] = kb / 1024 if kb else None
        if any(v is not None for v in values.values()):
            nproc = ", ".join(
                f"{TITLES[t]} {r['memory']['nproc']} proc"
                for t, r in results.items()
                if r["memory"].get("nproc")
            )
            rows.append(Row(label, "MiB", values, {}, False, note=note or nproc))
    return rows


def big_upload_rows(big: dict[str, dict[str, Any]]) -> list[Row]:
    if not big:
        return []
    size = next(iter(big.values())).get("size", 0) / GiB
    rows = []
    failed = {t: r["error"] for t, r in big.items() if r.get("error")}
    for label, key, unit, scale, higher in (
        (f"{size:g} GiB monolithic upload", "mbps", "MB/s", 1.0, True),
        (f"{size:g} GiB upload: server RSS idle", "idle_rss_kib", "MiB", 1 / 1024, False),
        (f"{size:g} GiB upload: server RSS peak", "peak_rss_kib", "MiB", 1 / 1024, False),
        (f"{size:g} GiB upload: peak - idle", "growth_mib", "MiB", 1.0, False),
    ):
        values: dict[str, float | None] = {}
        for target, res in big.items():
            value = res.get(key)
            values[target] = value * scale if value is not None else None
        note = ""
        if key == "growth_mib" and DOCKYARD in big:
            res = big[DOCKYARD]
            verdict = "PASS" if res.get("within_limit") else "FAIL"
            note = f"target for Dockyard: <= +{res.get('limit_mib', 64):g} MiB: {verdict}"
        rows.append(Row(label, unit, values, failed if key == "mbps" else {}, higher, note=note))
    return rows


def render(rows: list[Row], targets: list[str]) -> str:
    titles = [TITLES[t] for t in targets]
    header = ["scenario", "unit", *titles, "ratio", "server CPU cost", *titles, "ratio"]
    if DOCKYARD_METRICS in targets:
        header.append("metrics on/off")
    header.append("notes")
    table = [header] + [row.cells(targets) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    numeric = {i for i, h in enumerate(header) if h in (*titles, "ratio", "metrics on/off")}

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (widths[i] + 1) + ":" if i in numeric else "-" * (widths[i] + 2)
        for i in range(len(header))
    )
    return "\n".join([line(header), rule + "|", *(line(cells) for cells in table[1:])])


def render_physical(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = ["| this machine's limits (regbench --physical) | median | unit | notes |"]
    lines.append("|---|---:|---|---|")
    for row in rows:
        notes = "; ".join(x for x in (row.get("cost") or "", row.get("note") or "") if x)
        label = row["label"].split(" ", 1)[1] if row["label"][:1] == "L" else row["label"]
        lines.append(f"| {label} | {fmt(row.get('median'))} | {row.get('unit', '')} | {notes} |")
    return "\n".join(lines)
