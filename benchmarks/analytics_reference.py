"""The named analytics queries written again in pandas: the reference that DuckDB's answers must equal.

Each function takes the alert table as a DataFrame (every column of
:data:`relay.history.table.SCHEMA`, as ``pyarrow`` hands it to pandas) and
returns rows in the order and shape of ``GET /api/analytics/{name}``.  The
benchmark times these against DuckDB on the same files; the tests compare the
answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd

from relay.history.analytics import (
    CONFIDENCE_BINS,
    TOP_OBJECT_TYPES,
    UNUSUAL_MIN_ALERTS,
    UNUSUAL_MIN_DAYS,
    UNUSUAL_SIGMAS,
)

Rows = list[list[Any]]
_SEVERITY_ORDER = {"low": 1, "medium": 2, "high": 3, "critical": 4}
_HOUR = pd.Timedelta(hours=1)


def half_away(value: float, digits: int) -> float:
    """``value`` rounded as DuckDB's ``round`` does, halves away from zero (Python's ``round`` sends them to even,
    so 11.125 would be 11.12 here and 11.13 there: a difference of a whole last digit, beyond any tolerance)."""
    exact = Decimal(float(value))  # the double's own value: 2.675 is 2.67499…, which rounds down in both
    return float(exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _iso(moments: pd.Series) -> list[str]:
    return [moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z" for moment in moments]


def _hours(alerts: pd.DataFrame) -> pd.Series:
    return alerts["createdAt"].dt.tz_convert("UTC").dt.tz_localize(None).dt.floor("h")


def alerts_per_hour(alerts: pd.DataFrame) -> Rows:
    counts = alerts.assign(hour=_hours(alerts)).groupby(["hour", "streamId"]).size().reset_index(name="alerts")
    counts = counts.sort_values(["hour", "streamId"])
    return [list(row) for row in zip(_iso(counts["hour"]), counts["streamId"], counts["alerts"], strict=True)]


def severity_mix(alerts: pd.DataFrame) -> Rows:
    counts = alerts.astype({"severity": "string"}).groupby(["streamId", "severity"]).size().reset_index(name="alerts")
    counts["share"] = counts["alerts"] / counts.groupby("streamId")["alerts"].transform("sum")
    counts["order"] = counts["severity"].map(_SEVERITY_ORDER)
    counts = counts.sort_values(["streamId", "order"])
    return [
        [stream, severity, int(count), share]
        for stream, severity, count, share in zip(
            counts["streamId"], counts["severity"], counts["alerts"], counts["share"], strict=True
        )
    ]


def top_object_types(alerts: pd.DataFrame) -> Rows:
    kinds = alerts["objectType"].dropna()
    counts = kinds.value_counts().rename_axis("objectType").reset_index(name="alerts")
    counts["share"] = counts["alerts"] / len(kinds)
    counts = counts.sort_values(["alerts", "objectType"], ascending=[False, True]).head(TOP_OBJECT_TYPES)
    return [[kind, int(count), share] for kind, count, share in counts.itertuples(index=False)]


def confidence_histogram(alerts: pd.DataFrame) -> Rows:
    rated = alerts[alerts["confidence"].between(0, 1)]
    bins = np.minimum(np.floor(rated["confidence"] * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)
    counts = rated.assign(bin=bins).groupby(["objectType", "bin"], dropna=False).size().reset_index(name="alerts")
    counts = counts.sort_values(["objectType", "bin"], na_position="last")
    return [
        [None if pd.isna(kind) else kind, bin / CONFIDENCE_BINS, (bin + 1) / CONFIDENCE_BINS, int(count)]
        for kind, bin, count in counts.itertuples(index=False)
    ]


def hour_of_week(alerts: pd.DataFrame) -> Rows:
    stamps = alerts["createdAt"].dt.tz_convert("UTC")
    counts = pd.crosstab(stamps.dt.day_of_week + 1, stamps.dt.hour)
    counts = counts.reindex(index=range(1, 8), columns=range(24), fill_value=0)
    return [[day, hour, int(counts.at[day, hour])] for day in range(1, 8) for hour in range(24)]


def time_between_alerts(alerts: pd.DataFrame) -> Rows:
    rows = []
    for stream, group in alerts.sort_values("seq").groupby("streamId", sort=True):
        micros = group["createdAt"].dt.as_unit("us").astype("int64")
        gaps = micros.diff().dropna()  # in µs, divided after the mean as the query does, so both round alike
        rows.append(
            [
                stream,
                len(group),
                half_away(gaps.mean() / 1e6, 3) if len(gaps) else None,
                half_away(gaps.median() / 1e6, 3) if len(gaps) else None,
                half_away(gaps.max() / 1e6, 3) if len(gaps) else None,
            ]
        )
    return rows


def unusual_hours(alerts: pd.DataFrame) -> Rows:
    hours = alerts.assign(hour=_hours(alerts))
    found = []
    for stream, group in hours.groupby("streamId", sort=True):
        counts = group.groupby("hour").size()
        calendar = pd.date_range(counts.index.min(), counts.index.max(), freq="h")
        filled = counts.reindex(calendar, fill_value=0)
        by_hour = filled.groupby(filled.index.hour)
        mean = by_hour.transform("mean")
        spread = by_hour.transform(lambda counts: counts.std(ddof=0))
        days = by_hour.transform("size")
        threshold = mean + UNUSUAL_SIGMAS * spread
        flagged = (filled >= UNUSUAL_MIN_ALERTS) & (filled > threshold) & (days >= UNUSUAL_MIN_DAYS)
        for moment in filled.index[flagged]:
            found.append(
                [stream, moment, int(filled[moment]), half_away(mean[moment], 2), half_away(threshold[moment], 2)]
            )
    found.sort(key=lambda row: (row[1], row[0]))
    return [[stream, _iso(pd.Series([moment]))[0], *rest] for stream, moment, *rest in found]


REFERENCE: dict[str, Callable[[pd.DataFrame], Rows]] = {
    "alerts-per-hour": alerts_per_hour,
    "severity-mix": severity_mix,
    "top-object-types": top_object_types,
    "confidence-histogram": confidence_histogram,
    "hour-of-week": hour_of_week,
    "time-between-alerts": time_between_alerts,
    "unusual-hours": unusual_hours,
}


def same_rows(ours: Rows, reference: Rows, *, tolerance: float = 1e-3) -> bool:
    """Equal row for row; numbers within ``tolerance`` (the two round halves differently)."""
    if len(ours) != len(reference):
        return False
    for mine, theirs in zip(ours, reference, strict=True):
        if len(mine) != len(theirs):
            return False
        for a, b in zip(mine, theirs, strict=True):
            if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
                if not math.isclose(float(a), float(b), abs_tol=tolerance):
                    return False
            elif a != b:
                return False
    return True
