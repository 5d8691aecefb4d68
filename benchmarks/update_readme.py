"""Writes the benchmark tables into the README from ``benchmarks/results``.

Usage::

    python benchmarks/update_readme.py

Each table sits between ``<!-- NAME -->`` and ``<!-- /NAME -->`` markers (a
bare ``NAME`` line is replaced the first time); the figures are the ones the
benchmark scripts last wrote, with the command that produced them.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

import bench_cnn  # noqa: E402
import bench_cross  # noqa: E402
import bench_dhash  # noqa: E402


def _load(name):
    path = os.path.join(HERE, "results", f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _with_command(table, res):
    cmd = res.get("command") if res else None
    if not cmd:
        return table
    note = f"; {res['note']}" if res.get("note") else ""
    return table + f"\n\n*Measured with `{cmd}`{note}.*"


def tables():
    """The Markdown of each table, by marker name."""
    out = {}
    dhash, cnn, cross = _load("dhash"), _load("cnn"), _load("cross")
    sweep = _load("cnn_sweep")
    if sweep:
        out["BENCH_CNN_SWEEP_TABLE"] = _with_command(
            bench_cnn.markdown_sweep_search(sweep["sweep"]), sweep
        )
    if dhash:
        out["BENCH_DHASH_TABLE"] = _with_command(bench_dhash.markdown(dhash), dhash)
    if cnn:
        out["BENCH_CNN_TABLE"] = _with_command(bench_cnn.markdown(cnn), cnn)
        if "quality" in cnn:
            out["BENCH_CNN_TRANSFORMS_TABLE"] = bench_cnn.markdown_transforms(cnn["quality"])
            out["BENCH_CNN_THRESHOLDS_TABLE"] = bench_cnn.markdown_sweep(cnn["quality"])
    if cross:
        out["BENCH_CROSS_TABLE"] = _with_command(bench_cross.markdown(cross), cross)
    return out


def update(text, tables):
    """Replaces each marked (or bare) table name in ``text``."""
    for name, table in tables.items():
        block = f"<!-- {name} -->\n{table}\n<!-- /{name} -->"
        marked = re.compile(rf"<!-- {name} -->\n.*?\n<!-- /{name} -->", re.S)
        if marked.search(text):
            text = marked.sub(lambda _: block, text)
        else:
            text = re.sub(rf"^{name}$", lambda _: block, text, flags=re.M)
    return text


def main():
    path = os.path.join(REPO, "README.md")
    with open(path) as f:
        text = f.read()
    new = update(text, tables())
    if new != text:
        with open(path, "w") as f:
            f.write(new)
    print(f"{path}: {'updated' if new != text else 'unchanged'}")


if __name__ == "__main__":
    main()
