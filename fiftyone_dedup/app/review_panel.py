"""The review panel: step through a run's groups one at a time, the kept
image beside each duplicate, and decide (see
:mod:`fiftyone_dedup.engine.decisions`, which does the work).
"""

import logging
import os
import urllib.parse

import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.app import forms
from fiftyone_dedup.engine import field_names
from fiftyone_dedup.engine import runs
from fiftyone_dedup.engine import decisions
from fiftyone_dedup.engine import review

logger = logging.getLogger(__name__)

#: the panel's name (``panels:`` in fiftyone.yml)
PANEL_NAME = "dedup_review"

#: the operator the panel's move button opens (its decisions drive it)
MOVE_OPERATOR = "@fiftyone_dedup/dedup/move_duplicates"

_DECISION_TEXT = {
    field_names.ROLE_DUPLICATE: "duplicate: moves with the next move",
    decisions.ROLE_NOT_DUPLICATE: "not a duplicate: never moves",
}


def media_url(path):
    """The App server's address of a local image file."""
    return "/media?filepath=" + urllib.parse.quote(path, safe="")


#: a side of a pair (one of the row's two equal columns): may shrink below
#: its content's width
_HALF = {"item": {"sx": {"minWidth": 0}}}


def _image(stack, name, path):
    """An image file at its column's width (its aspect kept), served by the App."""
    stack.str(name, default=media_url(path), view=types.ImageView(width="100%", alt=path))


#: the panel's keys (fiftyone_dedup/js/review_keys.js binds them)
KEYS_HINT = (
    "Keys: j / \u2192 next group, k / \u2190 previous, a accept group, x reject group, "
    "n first duplicate not a duplicate, s keep the first duplicate instead"
)


def bin_of(histogram, idx):
    """The score range ``(lo, hi)`` of a histogram bar (its bin's edges)."""
    edges = histogram["edges"]
    idx = int(idx)
    if not 0 <= idx < len(edges) - 1:
        raise ValueError(f"No histogram bar {idx}")
    return edges[idx], edges[idx + 1]


def bin_text(metric, lo, hi):
    """A bar's scores in words: ``"2 bits"`` (Hamming bins are one bit wide,
    edges at half bits) or ``"0.95 to 0.955"``."""
    if metric == "cosine":
        return f"{lo:g} to {hi:g}"
    a, b = int(round(lo + 0.5)), int(round(hi - 0.5))
    return f"{a} bits" if a == b else f"{a} to {b} bits"


def _in_bin(score, lo, hi, last):
    return score is not None and lo <= score and (score < hi or (last and score <= hi))


def _newest_run(dataset):
    keys = forms.runs_newest_first(dataset)
    return keys[0] if keys else None


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

    def execute(self, ctx):
        # The App sends an input's change event when it draws the input, with
        # the value it already holds (the threshold slider does, twice). Such
        # an event changes nothing, but its render, from the state it was
        # sent with, could land after a step in flight and undo it on screen.
        if self._unchanged_input(ctx):
            return None
        return super().execute(ctx)

    def _unchanged_input(self, ctx):
        method = ctx.params.get("__method__")
        value = ctx.params.get("value")
        state = ctx.panel.state
        if method == "on_change_run":
            return value == state.run_key
        if method == "on_threshold":
            current = state.threshold
            if current is None and state.run_key in runs.list_runs(ctx.dataset):
                current = ctx.dataset.get_run_info(state.run_key).config.threshold
            return current is not None and value == current
        return False

    def on_load(self, ctx):
        ctx.panel.state.run_key = _newest_run(ctx.dataset) if ctx.dataset else None
        ctx.panel.state.index = 0

    def _groups(self, ctx):
        run_key = ctx.panel.state.run_key
        if not run_key or run_key not in runs.list_runs(ctx.dataset):
            return run_key, []
        return run_key, decisions.review_groups(ctx.dataset, run_key)

    def on_change_run(self, ctx):
        ctx.panel.state.run_key = ctx.params.get("value")
        ctx.panel.state.index = 0
        ctx.panel.state.threshold = None
        ctx.panel.state.bin = None

    def _shown_index(self, ctx):
        """The group the panel showed when the key or button was used (its
        view's params), else the state's: a step or decision acts on what
        the person saw, whatever render or reload came in between."""
        index = ctx.params.get("index")
        return int(ctx.panel.state.index or 0) if index is None else int(index)

    def _step(self, ctx, delta):
        _, groups = self._groups(ctx)
        if groups:
            ctx.panel.state.index = (self._shown_index(ctx) + delta) % len(groups)

    def next_group(self, ctx):
        self._step(ctx, 1)

    def previous_group(self, ctx):
        self._step(ctx, -1)

    def _current(self, ctx):
        _, groups = self._groups(ctx)
        if not groups:
            return None
        group = ctx.params.get("group")
        shown = [g for g in groups if group is not None and g["group"] == group]
        return shown[0] if shown else groups[self._shown_index(ctx) % len(groups)]

    def key_group(self, ctx, decision):
        g = self._current(ctx)
        if g is not None:
            self._apply(ctx, decisions.decide_group, f"Group {g['group']}: {decision}ed",
                        group=g["group"], decision=decision)

    def key_accept(self, ctx):
        self.key_group(ctx, "accept")

    def key_reject(self, ctx):
        self.key_group(ctx, "reject")

    def key_first(self, ctx, decision):
        """A decision on the shown group's first duplicate (a key's)."""
        g = self._current(ctx)
        if g is None or not g["duplicates"]:
            return
        d = g["duplicates"][0]
        name = os.path.basename(d["filepath"])
        self._apply(ctx, decisions.decide, f"{name}: {decision.replace('_', ' ')}",
                    sample_id=d["id"], decision=decision)

    def key_not_duplicate(self, ctx):
        self.key_first(ctx, decisions.NOT_DUPLICATE)

    def key_keep(self, ctx):
        self.key_first(ctx, decisions.KEEP)

    def on_histogram_click(self, ctx):
        """A bar clicked: the grid shows the pairs whose recorded score lies
        in its bin, and the panel steps to the first of their groups."""
        run_key, groups = self._groups(ctx)
        results = runs.load_run(ctx.dataset, run_key)
        hist = results.histogram
        try:
            lo, hi = bin_of(hist, ctx.params.get("idx", -1))
        except (TypeError, ValueError) as e:
            ctx.ops.notify(str(e), variant="error")
            return
        last = ctx.params.get("idx") == len(hist["edges"]) - 2
        hits = [
            (i, g["group"]) for i, g in enumerate(groups)
            if any(_in_bin(d["score"], lo, hi, last) for d in g["duplicates"])
        ]
        n = sum(1 for g in groups for d in g["duplicates"] if _in_bin(d["score"], lo, hi, last))
        text = bin_text(hist["metric"], lo, hi)
        ctx.panel.state.bin = [text, n]
        if not hits:
            ctx.ops.notify(
                f"No grouped pair at {text}: pairs past the threshold, or rejected by "
                "verification, are counted, not grouped", variant="info")
            return
        ctx.panel.state.index = hits[0][0]
        group_f = field_names.output_fields(run_key, results.config.metric)[0]
        view = ctx.dataset.match(F(group_f).is_in([g for _, g in hits])).sort_by(group_f)
        ctx.ops.set_view(view=view)
        ctx.ops.notify(f"{n} pair(s) at {text}, in {len(hits)} group(s)")

    def _apply(self, ctx, work, what, **kwargs):
        """Runs a :mod:`fiftyone_dedup.engine.decisions` function on the panel's run
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
        self._apply(
            ctx, decisions.decide_all, f"All groups {p['decision']}ed", decision=p["decision"],
        )

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
            label=encoders.get_encoder(config.encoder).threshold_label,
            description=(
                "Stricter than the run's: regroups from the recorded scores, "
                "nothing is recomputed"
            ),
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

    def _histogram(self, ctx, panel, run_key):
        """The run's distance histogram; a click on a bar shows its pairs."""
        hist = runs.load_run(ctx.dataset, run_key).histogram
        if not hist:
            return
        fig = review.histogram_figure(hist)
        layout = dict(fig["layout"], height=260, clickmode="event")
        panel.plot(
            "histogram", data=fig["data"], layout=layout, config={"displayModeBar": False},
            on_click=self.on_histogram_click,
        )
        shown = ctx.panel.state.bin
        if shown:
            text, n = shown
            panel.md(f"Bar at {text}: **{n} grouped pair(s)** (the grid shows their groups)",
                     name="histogram_bin")

    def render(self, ctx):
        panel = types.Object()
        keys = runs.list_runs(ctx.dataset) if ctx.dataset else []
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
        shown = {"index": i, "group": g["group"]}
        panel.view("keys", types.View(
            component="DedupReviewKeys", composite_view=True, hint=KEYS_HINT, params=shown,
            on_next=self.next_group, on_previous=self.previous_group,
            on_accept=self.key_accept, on_reject=self.key_reject,
            on_not_duplicate=self.key_not_duplicate, on_keep=self.key_keep,
        ))
        nav = panel.h_stack("nav", align_x="left", gap=2)
        nav.btn("previous", label="Previous group", icon="arrow_back",
                on_click=self.previous_group, params=shown)
        nav.md(f"**Group {i + 1} of {len(groups)}** (group {g['group']})", name="position")
        nav.btn("next", label="Next group", icon="arrow_forward",
                on_click=self.next_group, params=shown)
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
        self._histogram(ctx, panel, run_key)
        kept = g["kept"]
        for j, d in enumerate(g["duplicates"]):
            # two equal columns (a CSS grid), whatever the images' sizes
            pair = panel.h_stack(f"pair_{j}", gap=2, align_y="top", columns=2)
            left = pair.v_stack(f"kept_side_{j}", gap=1, componentsProps=_HALF)
            if kept is not None:
                left.md(f"**Kept**: `{os.path.basename(kept['filepath'])}`", name=f"kept_name_{j}")
                _image(left, f"kept_img_{j}", kept["filepath"])
            else:  # cross-dataset: the kept sample is in another dataset
                other = d.get("kept_filepath")
                left.md(
                    f"**Kept** (in `{d.get('kept_dataset')}`): "
                    f"`{os.path.basename(other or '?')}`",
                    name=f"kept_name_{j}",
                )
                if other:
                    _image(left, f"kept_img_{j}", other)
            right = pair.v_stack(f"dup_side_{j}", gap=1, componentsProps=_HALF)
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
