"""Pictures of the duplicates found: a PNG contact sheet per group (the
kept image, then its duplicates with their distances, cross-folder
duplicates marked) and one HTML page that shows them all. Pure PIL.
"""

import html
import logging
import os
import pathlib

from PIL import Image, ImageDraw

from fiftyone_dedup.algorithms import decode

logger = logging.getLogger(__name__)

THUMB = 180
PAD = 8
CAPTION = 34
KEPT_COLOR = (46, 139, 87)
DUP_COLOR = (200, 60, 60)
CROSS_COLOR = (30, 90, 200)


def _thumb(path):
    try:
        img = decode.load_rgb(path, draft_size=(THUMB * 2, THUMB * 2))
        img.thumbnail((THUMB, THUMB))
        return img
    except decode.DecodeError as e:
        tile = Image.new("RGB", (THUMB, THUMB), (90, 90, 90))
        ImageDraw.Draw(tile).text((8, THUMB // 2), f"unreadable:\n{e}"[:60], fill=(255, 255, 255))
        return tile


def contact_sheet(group, score_name="distance"):
    """A contact sheet of one group.

    Args:
        group: a report group: ``{"keep": path, "details": [{"path",
            <score_name>, "cross"}]}``
        score_name ("distance"): ``"distance"`` or ``"similarity"``

    Returns:
        a ``PIL.Image.Image``
    """
    tiles = [(group["keep"], "KEPT", KEPT_COLOR)]
    for d in group.get("details", []):
        score = d.get(score_name)
        text = f"d={score}" if score_name == "distance" else f"s={score:.3f}"
        if d.get("cross"):
            text += " CROSS"
        tiles.append((d["path"], text, CROSS_COLOR if d.get("cross") else DUP_COLOR))
    width = PAD + len(tiles) * (THUMB + PAD)
    sheet = Image.new("RGB", (width, THUMB + CAPTION + 2 * PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (path, text, color) in enumerate(tiles):
        x = PAD + i * (THUMB + PAD)
        img = _thumb(path)
        ox = x + (THUMB - img.width) // 2
        oy = PAD + (THUMB - img.height) // 2
        sheet.paste(img, (ox, oy))
        draw.rectangle((x - 2, PAD - 2, x + THUMB + 1, PAD + THUMB + 1), outline=color, width=3)
        draw.text((x, PAD + THUMB + 4), text, fill=color)
        name = os.path.basename(path)
        shown = name if len(name) <= 28 else name[:25] + "..."
        draw.text((x, PAD + THUMB + 18), shown, fill=(60, 60, 60))
    return sheet


def write_gallery(report, out_dir, max_groups=500, progress=None):
    """Writes contact sheets and an HTML page for a report's groups.

    Args:
        report: a report dict (see :func:`fiftyone_dedup.cli.report.build_report`)
        out_dir: the folder to write into (created; only files named
            ``group_*.png`` and ``index.html`` are written)
        max_groups (500): the most groups drawn; the report lists them all
        progress (None): an optional callable invoked with 1 per group drawn

    Returns:
        the path of ``index.html``
    """
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    score_name = "similarity" if report.get("metric") == "cosine" else "distance"
    groups = report.get("groups", [])
    shown = groups[:max_groups]
    items = []
    for i, g in enumerate(shown, start=1):
        name = f"group_{i:05d}.png"
        contact_sheet(g, score_name).save(os.path.join(out_dir, name))
        rows = [
            f'<li class="kept">kept: <a href="{pathlib.Path(g["keep"]).as_uri()}">'
            f"{html.escape(g['keep'])}</a></li>"
        ]
        for d in g.get("details", []):
            cls = "cross" if d.get("cross") else "dup"
            rows.append(
                f'<li class="{cls}">{score_name} {d.get(score_name)}'
                f'{" (cross-folder)" if d.get("cross") else ""}: '
                f'<a href="{pathlib.Path(d["path"]).as_uri()}">{html.escape(d["path"])}</a></li>'
            )
        items.append(
            f'<section><h2>Group {i}</h2><img src="{name}" alt="group {i}">'
            f'<ul>{"".join(rows)}</ul></section>'
        )
        if progress is not None:
            progress(1)
    s = report.get("summary", {})
    more = ""
    if len(groups) > len(shown):
        more = (
            f"<p>Showing the first {len(shown)} of {len(groups)} groups; the "
            "JSON report lists them all.</p>"
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>fiftyone-dedup: duplicates</title>
<style>body{{font-family:sans-serif;margin:2em}}img{{max-width:100%;border:1px solid #ddd}}
li.kept{{color:#2e8b57}}li.dup{{color:#c83c3c}}li.cross{{color:#1e5ac8}}section{{margin-bottom:2em}}</style>
</head><body>
<h1>Duplicates: {s.get('num_duplicates', 0)} in {s.get('num_groups', 0)} group(s)</h1>
<p>Encoder {html.escape(str(report.get('encoder')))}, threshold {report.get('threshold')};
{s.get('num_cross', 0)} cross-folder duplicate(s). Each row: the kept image (green), then its
duplicates (red; blue when in another folder).</p>
{more}
{''.join(items)}
</body></html>
"""
    index = os.path.join(out_dir, "index.html")
    with open(index, "w", encoding="utf-8") as f:
        f.write(page)
    return index
