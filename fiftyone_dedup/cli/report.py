"""The JSON report and the summary table of a command-line run."""

import os

from fiftyone_dedup.engine import encodings
from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.engine import encodings_io
from fiftyone_dedup.engine.folders import SOURCE_FIELD

#: the ``format`` of the reports written here
FORMAT = "fiftyone-dedup-report"

# what every report has had, also before it carried its format
_REPORT_KEYS = {"encoder", "threshold", "summary", "groups", "failed"}


def is_report_file(path):
    """Whether the next ``--report`` may overwrite a file: a JSON report
    written by this tool (also one from before reports carried ``format``)."""
    data = encodings_io.load_json_or_none(path)
    if not isinstance(data, dict):
        return False
    return data.get("format") == FORMAT or (
        "format" not in data and _REPORT_KEYS <= set(data)
    )


def build_report(dataset, results, encoder, threshold, dirs=None):
    """Builds the command line's JSON report.

    Args:
        dataset: the dataset the run was on
        results: the run's :class:`fiftyone_dedup.engine.runs.DedupRunResults`
        encoder: the encoder name
        threshold: the threshold used
        dirs (None): the folders of the run

    Returns:
        a dict: ``{"format", "encoder", "threshold", "groups": [{"keep", "duplicates",
        ...}], "failed": [{"path", "error"}], ...}``
    """
    spec = encoders.get_encoder(encoder)
    groups = results.groups()
    source = {}
    if dataset.has_sample_field(SOURCE_FIELD):
        source = dict(zip(*dataset.values(["id", SOURCE_FIELD])))
    score_name = spec.score_name

    out_groups = []
    num_cross = 0
    for g in groups:
        keep = g["keep"]
        keep_src = source.get(keep["id"])
        dups, details = [], []
        for d in g["duplicates"]:
            cross = source.get(d["id"]) != keep_src
            num_cross += int(cross)
            dups.append(os.path.abspath(d["filepath"]))
            details.append(
                {
                    "path": os.path.abspath(d["filepath"]),
                    score_name: d["score"],
                    **({"inliers": d["inliers"]} if "inliers" in d else {}),
                    "cross": cross,
                    "source_dir": source.get(d["id"]),
                }
            )
        out_groups.append(
            {
                "keep": os.path.abspath(keep["filepath"]),
                "duplicates": dups,
                "keep_source_dir": keep_src,
                "details": details,
            }
        )

    failed = [
        {"path": os.path.abspath(f["filepath"]), "error": f["error"]}
        for f in encodings.get_failures(dataset, results.config.field)
    ]
    summary = dict(results.summary)
    summary["num_cross"] = num_cross
    return {
        "format": FORMAT,
        "encoder": spec.label,
        "model": getattr(results.config, "model", None),
        "threshold": threshold,
        "metric": spec.metric,
        "verify": getattr(results.config, "verify", None),
        "verify_settings": getattr(results.config, "verify_settings", None),
        "dataset": dataset.name,
        "run_key": results.key,
        "dirs": list(dirs or []),
        "summary": summary,
        "groups": out_groups,
        "failed": failed,
    }


def add_move(report, result):
    """Adds what moved (or would move) where to a report.

    Args:
        report: a dict from :func:`build_report`
        result: a :class:`fiftyone_dedup.moves.results.MoveResult`
    """
    report["move"] = result.to_dict()
    summary = report["summary"]
    if result.dry_run:
        summary["num_planned"] = result.num_planned
    else:
        summary["num_moved"] = result.num_moved
    summary["num_not_moved"] = result.num_skipped


def summary_table(report):
    """A plain-text summary table of a report.

    Args:
        report: a dict from :func:`build_report`

    Returns:
        a string
    """
    s = report["summary"]
    rows = [
        ("dataset", report["dataset"]),
        ("encoder", _encoder_text(report)),
        ("images", s.get("num_samples", 0)),
        ("encoded now / reused", f"{s.get('num_computed', 0)} / {s.get('num_reused', 0)}"),
        ("unreadable", s.get("num_failed", 0)),
        ("groups", s.get("num_groups", 0)),
        ("duplicates", s.get("num_duplicates", 0)),
    ]
    if "num_candidates" in s:
        rows.insert(-2, (
            "verified pairs",
            f"{s.get('num_verified', 0)} of {s.get('num_checked', 0)} checked "
            f"({s['num_candidates']} candidates)",
        ))
    if len(report.get("dirs") or []) > 1:
        rows.append(("cross-folder duplicates", s.get("num_cross", 0)))
    for key, label in (
        ("num_moved", "moved"),
        ("num_planned", "would move"),
        ("num_not_moved", "not moved (see report)"),
    ):
        if key in s and (key != "num_not_moved" or s[key]):
            rows.append((label, s[key]))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def _encoder_text(report):
    model = report.get("model")
    name = report["encoder"] + (f" {model}" if model else "")
    return f"{name} (threshold {report['threshold']})"
