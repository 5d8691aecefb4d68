"""Reviewing a run: saved views, a summary, and the histogram of match
distances near the threshold (a PNG for the command line, a Plotly figure
for the App).
"""

import logging
import os

from fiftyone import ViewField as F

from fiftyone_dedup.engine import runs

logger = logging.getLogger(__name__)

#: the saved views a run creates, by suffix
VIEW_SUFFIXES = ("groups", "kept", "duplicates")


def view_names(run_key, cross=False):
    """The names of the saved views a run creates.

    Args:
        run_key: the run key
        cross (False): whether the run spans several collections (adds a
            view of the cross-collection hits)

    Returns:
        a list of names such as ``"dedup-groups"``
    """
    suffixes = VIEW_SUFFIXES + (("cross",) if cross else ())
    return [f"{run_key}-{s}" for s in suffixes]


def build_view(samples, run_key, which):
    """One of a run's review views.

    Args:
        samples: the collection the run was on
        run_key: the run key
        which: ``"groups"`` (all groups, each kept sample then its
            duplicates), ``"kept"``, ``"duplicates"`` or ``"cross"`` (samples
            in a group that spans collections)

    Returns:
        a ``DatasetView``
    """
    if which == "groups":
        return runs.duplicates_view(samples, run_key)
    if which == "kept":
        return runs.duplicates_view(samples, run_key, role=runs.ROLE_KEPT)
    if which == "duplicates":
        return runs.duplicates_view(samples, run_key, role=runs.ROLE_DUPLICATE)
    if which == "cross":
        cross_f = runs.output_field(run_key, "cross")
        return runs.duplicates_view(samples, run_key).match(F(cross_f) == True)  # noqa: E712
    raise ValueError(
        f"Unknown view {which!r}; expected groups, kept, duplicates or cross"
    )


def save_views(samples, run_key, names):
    """Saves a run's review views on its dataset (replacing older ones).

    Args:
        samples: the collection the run was on
        run_key: the run key
        names: names from :func:`view_names`
    """
    dataset = samples._root_dataset
    for name in names:
        which = name[len(run_key) + 1 :]
        dataset.save_view(name, build_view(samples, run_key, which), overwrite=True)


def summary_lines(summary):
    """A human summary of a run.

    Args:
        summary: a run's ``summary`` dict

    Returns:
        a list of lines
    """
    lines = [
        f"{summary.get('num_duplicates', 0)} duplicate(s) in "
        f"{summary.get('num_groups', 0)} group(s) among "
        f"{summary.get('num_samples', 0)} sample(s)"
    ]
    if summary.get("num_cross"):
        lines.append(f"{summary['num_cross']} duplicate(s) of a sample in another collection")
    if summary.get("num_failed"):
        lines.append(f"{summary['num_failed']} image(s) could not be read")
    per = summary.get("datasets") or {}
    if len(per) > 1:
        for name, d in per.items():
            lines.append(
                f"  {name}: {d['samples']} sample(s), {d['kept']} kept, "
                f"{d['duplicates']} duplicate(s) ({d['cross']} across)"
            )
    return lines


def _xlabel(histogram):
    if "verified" in histogram:
        if histogram["metric"] == "cosine":
            return "cosine similarity of candidate pairs"
        return "Hamming distance of candidate pairs (bits)"
    if histogram["metric"] == "cosine":
        return "cosine similarity of matched pairs"
    return "Hamming distance of matched pairs (bits)"


#: the PNG ``Software`` text of histograms written here
HISTOGRAM_SOFTWARE = "fiftyone-dedup histogram"


def is_histogram_png(path):
    """Whether the next ``--histogram`` may overwrite a file: a PNG that
    :func:`save_histogram_png` wrote (it carries :data:`HISTOGRAM_SOFTWARE`)."""
    from PIL import Image

    if not os.path.isfile(path):  # a FIFO or device is never opened
        return False
    try:
        with Image.open(path) as img:
            return img.format == "PNG" and img.text.get("Software") == HISTOGRAM_SOFTWARE
    except Exception:  # noqa: BLE001 - not a PNG of ours
        return False


def save_histogram_png(histogram, path, title=None):
    """Writes the distance histogram as a PNG, with the threshold marked.

    Args:
        histogram: a run's ``histogram`` dict
        path: the PNG path
        title (None): an optional title

    Returns:
        the path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges, counts = histogram["edges"], histogram["counts"]
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    t = histogram["threshold"]
    inside = [
        (c >= t) if histogram["metric"] == "cosine" else (c <= t) for c in centers
    ]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    bar_w = [w * 0.9 for w in widths]
    if "verified" in histogram:
        # a verified run: its candidates, verified and rejected
        ok, bad = histogram["verified"], histogram["rejected"]
        ax.bar(centers, ok, width=bar_w, color=VERIFIED_COLOR, label="verified")
        ax.bar(centers, bad, width=bar_w, bottom=ok, color=REJECTED_COLOR, label="rejected")
        ax.legend(loc="upper left")
        default_title = "Candidate pairs: verified and rejected"
    else:
        ax.bar(
            centers, counts, width=bar_w,
            color=["#d9534f" if i else "#999999" for i in inside],
        )
        default_title = "Pairs near the threshold (red: matched)"
    ax.axvline(t, color="black", linestyle="--", linewidth=1)
    ax.text(t, max(counts or [1]) * 0.95, f" threshold {t}", va="top")
    ax.set_xlabel(_xlabel(histogram))
    ax.set_ylabel("pairs")
    ax.set_title(title or default_title)
    fig.tight_layout()
    # the mark that lets a later run overwrite this file, and no other PNG
    fig.savefig(path, metadata={"Software": HISTOGRAM_SOFTWARE})
    plt.close(fig)
    return path


#: colours of verified and rejected candidate pairs
VERIFIED_COLOR = "#2c7fb8"
REJECTED_COLOR = "#f0a040"


def histogram_figure(histogram):
    """The distance histogram as a Plotly figure dict, for the App.

    Args:
        histogram: a run's ``histogram`` dict

    Returns:
        a dict with ``data`` and ``layout``
    """
    edges, counts = histogram["edges"], histogram["counts"]
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    t = histogram["threshold"]
    colors = [
        "#d9534f" if ((c >= t) if histogram["metric"] == "cosine" else (c <= t)) else "#999999"
        for c in centers
    ]
    if "verified" in histogram:
        data = [
            {"type": "bar", "x": centers, "y": histogram["verified"], "name": "verified",
             "marker": {"color": VERIFIED_COLOR}},
            {"type": "bar", "x": centers, "y": histogram["rejected"], "name": "rejected",
             "marker": {"color": REJECTED_COLOR}},
        ]
    else:
        data = [{
            "type": "bar", "x": centers, "y": counts, "marker": {"color": colors},
            "name": "pairs (red: matched at the threshold)", "showlegend": True,
        }]
    return {
        "data": data,
        "layout": {
            "barmode": "stack",
            # Plotly 2 reads axis titles from {"text": ...} only
            "xaxis": {"title": {"text": _xlabel(histogram)}},
            "yaxis": {"title": {"text": "pairs"}},
            "legend": {"orientation": "h", "y": 1.1},
            "shapes": [
                {"type": "line", "x0": t, "x1": t, "yref": "paper", "y0": 0, "y1": 1,
                 "line": {"dash": "dash"}}
            ],
            "margin": {"t": 20},
        },
    }
