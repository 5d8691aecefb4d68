"""The review panel: step through a run's groups one at a time, the kept
image beside each duplicate, and decide (see
:mod:`fiftyone_dedup.decisions`, which does the work).
"""

import logging
import os
import urllib.parse

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_dedup import core
from fiftyone_dedup import decisions

logger = logging.getLogger(__name__)

#: the panel's name (``panels:`` in fiftyone.yml)
PANEL_NAME = "dedup_review"

#: the operator the panel's move button opens (its decisions drive it)
MOVE_OPERATOR = "@fiftyone_dedup/dedup/move_duplicates"

_DECISION_TEXT = {
    core.ROLE_DUPLICATE: "duplicate: moves with the next move",
    decisions.ROLE_NOT_DUPLICATE: "not a duplicate: never moves",
}


def media_url(path):
    """The App server's address of a local image file."""
    return "/media?filepath=" + urllib.parse.quote(path, safe="")


def _image(stack, name, path):
    """An image file at its column's width (its aspect kept), served by the App."""
    stack.str(name, default=media_url(path), view=types.ImageView(width="100%", alt=path))


def _newest_run(dataset):
    keys = core.list_runs(dataset)
    if not keys:
        return None
    return max(keys, key=lambda k: dataset.get_run_info(k).timestamp.timestamp())


class ReviewPanel(foo.Panel):
    """Reviews a duplicates run group by group."""

    @property
    def config(self):
        return foo.PanelConfig(
            name=PANEL_NAME,
            label="Dedup review",
            icon="compare",
            help_markdown=(
                "Step through the groups of a duplicates run. **Keep this one "
                "instead** swaps the kept sample, **Not a duplicate** keeps a "
                "sample out of the move, **Accept** makes it a duplicate again. "
                "Decisions are saved with the run and change what the move does."
            ),
        )

    def on_load(self, ctx):
        ctx.panel.state.run_key = _newest_run(ctx.dataset) if ctx.dataset else None
        ctx.panel.state.index = 0

    def _groups(self, ctx):
        run_key = ctx.panel.state.run_key
        if not run_key or run_key not in core.list_runs(ctx.dataset):
            return run_key, []
        return run_key, decisions.review_groups(ctx.dataset, run_key)

    def on_change_run(self, ctx):
        ctx.panel.state.run_key = ctx.params.get("value")
        ctx.panel.state.index = 0
        ctx.panel.state.threshold = None

    def _step(self, ctx, delta):
        _, groups = self._groups(ctx)
        if groups:
            ctx.panel.state.index = (int(ctx.panel.state.index or 0) + delta) % len(groups)

    def next_group(self, ctx):
        self._step(ctx, 1)

    def previous_group(self, ctx):
        self._step(ctx, -1)

    def _apply(self, ctx, work, what, **kwargs):
        """Runs a :mod:`fiftyone_dedup.decisions` function on the panel's run
        and says how it went."""
        try:
            work(ctx.dataset, run_key=ctx.panel.state.run_key, **kwargs)
        except ValueError as e:
            ctx.ops.notify(str(e), variant="error")
            return
        ctx.ops.notify(what, variant="success")
        ctx.ops.reload_dataset()

    def decide(self, ctx):
        p = ctx.params
        self._apply(
            ctx, decisions.decide,
            f"{p.get('name') or p['sample_id']}: {p['decision'].replace('_', ' ')}",
            sample_id=p["sample_id"], decision=p["decision"],
        )

    def decide_group(self, ctx):
        p = ctx.params
        self._apply(
            ctx, decisions.decide_group, f"Group {p['group']}: {p['decision']}ed",
            group=p["group"], decision=p["decision"],
        )

    def decide_all(self, ctx):
        p = ctx.params
        self._apply(ctx, decisions.decide_all, f"All groups {p['decision']}ed", decision=p["decision"])

    def on_threshold(self, ctx):
        ctx.panel.state.threshold = ctx.params.get("value")

    def apply_threshold(self, ctx):
        t = ctx.panel.state.threshold
        self._apply(ctx, decisions.apply_threshold, f"Threshold {t} applied", threshold=t)

    def _threshold_inputs(self, ctx, panel, run_key):
        """A slider over the recorded scores, with the counts it would leave."""
        config = ctx.dataset.get_run_info(run_key).config
        cosine = config.metric == "cosine"
        t = ctx.panel.state.threshold
        if t is None:
            t = config.threshold
        lo, hi = (config.threshold, 1.0) if cosine else (0, config.threshold)
        # the slider's own state key differs from the one the handler sets,
        # so the App's syncing of the input cannot overwrite the choice
        panel.float(
            "threshold_slider", default=t, min=lo, max=hi,
            label="Minimum similarity" if cosine else "Threshold (bits)",
            description="Stricter than the run's: regroups from the recorded scores, nothing is recomputed",
            view=types.SliderView(step=0.01 if cosine else 1),
            on_change=self.on_threshold,
        )
        try:
            p = decisions.threshold_preview(ctx.dataset, t, run_key=run_key)
        except ValueError as e:
            panel.md(str(e), name="threshold_preview")
            return
        row = panel.h_stack("threshold_row", gap=2, align_y="center")
        row.md(
            f"At {t}: **{p['num_duplicates']} duplicate(s) in {p['num_groups']} group(s)**, "
            f"{p['num_dropped']} fewer",
            name="threshold_preview",
        )
        # always enabled: the App keeps a button's first disabled state
        row.btn("apply_threshold", label="Apply threshold", on_click=self.apply_threshold)

    def render(self, ctx):
        panel = types.Object()
        keys = core.list_runs(ctx.dataset) if ctx.dataset else []
        if not keys:
            panel.md("No duplicates runs: run **Dedup: find duplicates** first.", name="empty")
            return types.Property(panel, view=types.GridView(orientation="vertical"))
        runs_ = types.DropdownView()
        for key in keys:
            runs_.add_choice(key, label=key)
        panel.enum(
            "run_key", runs_.values(), default=ctx.panel.state.run_key, label="Run",
            view=runs_, on_change=self.on_change_run,
        )
        run_key, groups = self._groups(ctx)
        if not groups:
            panel.md(f"Run '{run_key}' found no groups.", name="no_groups")
            return types.Property(panel, view=types.GridView(orientation="vertical"))
        i = int(ctx.panel.state.index or 0) % len(groups)
        g = groups[i]
        nav = panel.h_stack("nav", align_x="left", gap=2)
        nav.btn("previous", label="Previous group", icon="arrow_back", on_click=self.previous_group)
        nav.md(f"**Group {i + 1} of {len(groups)}** (group {g['group']})", name="position")
        nav.btn("next", label="Next group", icon="arrow_forward", on_click=self.next_group)
        bulk = panel.h_stack("bulk", align_x="left", gap=2)
        bulk.btn("accept_group", label="Accept group", on_click=self.decide_group,
                 params={"group": g["group"], "decision": "accept"})
        bulk.btn("reject_group", label="Reject group", on_click=self.decide_group,
                 params={"group": g["group"], "decision": "reject"})
        bulk.btn("accept_all", label="Accept all groups", on_click=self.decide_all,
                 params={"decision": "accept"})
        bulk.btn("reject_all", label="Reject all groups", on_click=self.decide_all,
                 params={"decision": "reject"})
        bulk.btn("move", label="Move duplicates...", on_click=MOVE_OPERATOR, prompt=True,
                 params={"run_key": run_key}, variant="contained")
        self._threshold_inputs(ctx, panel, run_key)
        kept = g["kept"]
        for j, d in enumerate(g["duplicates"]):
            pair = panel.h_stack(f"pair_{j}", gap=2, align_y="top")
            left = pair.v_stack(f"kept_side_{j}", gap=1, space=6)
            if kept is not None:
                left.md(f"**Kept**: `{os.path.basename(kept['filepath'])}`", name=f"kept_name_{j}")
                _image(left, f"kept_img_{j}", kept["filepath"])
            else:  # cross-dataset: the kept sample is in another dataset
                other = d.get("kept_filepath")
                left.md(f"**Kept** (in `{d.get('kept_dataset')}`): `{os.path.basename(other or '?')}`",
                        name=f"kept_name_{j}")
                if other:
                    _image(left, f"kept_img_{j}", other)
            right = pair.v_stack(f"dup_side_{j}", gap=1, space=6)
            evidence = "".join(f", {k}: {v}" for k, v in d["evidence"].items())
            right.md(
                f"**{_DECISION_TEXT.get(d['role'], d['role'])}**: "
                f"`{os.path.basename(d['filepath'])}`  \nscore {d['score']}{evidence}",
                name=f"dup_name_{j}",
            )
            _image(right, f"dup_img_{j}", d["filepath"])
            actions = right.h_stack(f"dup_actions_{j}", gap=1)
            for decision, label in (
                (decisions.KEEP, "Keep this one instead"),
                (decisions.NOT_DUPLICATE, "Not a duplicate"),
                (decisions.ACCEPT, "Accept"),
            ):
                actions.btn(
                    f"{decision}_{j}", label=label, on_click=self.decide,
                    params={"sample_id": d["id"], "decision": decision,
                            "name": os.path.basename(d["filepath"])},
                    variant="outlined",
                )
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2))
