"""Operators over a recorded run: show its groups
(:class:`ShowDuplicates`), plot its scores (:class:`ShowDistanceHistogram`),
delete it (:class:`ClearDuplicates`). They are quick, so they run inline
(the review panel is :mod:`fiftyone_dedup.app.review_panel`).
"""

import logging

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_dedup.app import appui
from fiftyone_dedup.app import base
from fiftyone_dedup.app import forms
from fiftyone_dedup.engine import field_names
from fiftyone_dedup.engine import runs

logger = logging.getLogger(__name__)


def _config(name, label, description):
    # quick operators: a form, then one inline step on the whole dataset
    return foo.OperatorConfig(
        name=name, label=label, description=description, dynamic=True, view_target=False,
    )


def show_groups(ctx, view, run_key):
    """Sets the App's view to ``view`` and shows the run's group, role and
    score on the grid's tiles.

    Returns:
        the messages, which a generator operator must also yield
    """
    fields = [
        f for f in forms.run_fields(ctx.dataset, run_key) if not f.endswith("_kept_id")
    ]
    return [ctx.ops.set_view(view), ctx.ops.set_active_fields(fields)]


class ShowDistanceHistogram(foo.Operator):
    """Plots the match distances of a run near its threshold."""

    @property
    def config(self):
        return _config(
            "show_distance_histogram", "Dedup: plot match distances",
            "A histogram of the distances of matched pairs near the "
            "threshold, to help choose a threshold",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        forms.existing_run_input(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Plot match distances"))

    def execute(self, ctx):
        results = runs.load_run(ctx.dataset, ctx.params["run_key"])
        if not results.histogram:
            raise ValueError(
                f"Run '{ctx.params['run_key']}' recorded no histogram; run it "
                "again with the histogram on"
            )
        return {"histogram": results.histogram, "summary": appui.summary_text(results.summary)}

    def resolve_output(self, ctx):
        from fiftyone_dedup.engine import review

        outputs = types.Object()
        result = ctx.results or {}
        outputs.str("summary", label="Run")
        hist = result.get("histogram")
        if hist:
            fig = review.histogram_figure(hist)
            outputs.view(
                "plot",
                types.PlotlyView(data=fig["data"], layout=fig["layout"]),
            )
        return types.Property(outputs, view=types.View(label="Match distances"))


class ShowDuplicates(foo.Operator):
    """Sets the App's view to a run's groups."""

    @property
    def config(self):
        return _config(
            "show_duplicates", "Dedup: show duplicate groups",
            "Show the groups of a duplicates run (also of a scheduled "
            "run that has finished)",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        forms.existing_run_input(ctx, inputs)
        choices = types.RadioGroup()
        choices.add_choice("all", label="All group members")
        choices.add_choice("kept", label="Kept samples only")
        choices.add_choice("duplicate", label="Duplicates only")
        inputs.enum(
            "role", choices.values(), default="all", label="Show", view=choices
        )
        inputs.bool(
            "grouped", default=False, label="One tile per group",
            description="The grid shows each group once; the sample view pages through its members",
        )
        return types.Property(inputs, view=types.View(label="Show duplicates"))

    def execute(self, ctx):
        role = ctx.params.get("role", "all")
        run_key = ctx.params["run_key"]
        view = runs.duplicates_view(
            ctx.dataset, run_key, role=None if role == "all" else role,
            dynamic=bool(ctx.params.get("grouped", False)),
        )
        show_groups(ctx, view, run_key)
        if ctx.params.get("grouped", False):
            ctx.ops.notify(f"Showing {len(view)} group(s) of run '{run_key}'")
            return {"num_groups": len(view)}
        ctx.ops.notify(f"Showing {len(view)} sample(s) of run '{run_key}'")
        return {"num_samples": len(view)}


class ClearDuplicates(foo.Operator):
    """Deletes a duplicates run with its fields and tags."""

    @property
    def config(self):
        return _config(
            "clear_duplicates", "Dedup: clear results",
            "Delete a duplicates run and the fields and tags it wrote "
            "(images and encodings are untouched)",
        )

    def __call__(self, sample_collection, run_key=field_names.DEFAULT_RUN_KEY):
        """Deletes a run through the operator.

        Args:
            sample_collection: a dataset or view
            run_key ("dedup"): the run key

        Returns:
            an ``ExecutionResult``
        """
        return base.execute_operator(self, sample_collection, dict(run_key=run_key), False)

    def resolve_input(self, ctx):
        inputs = types.Object()
        run_key = forms.existing_run_input(ctx, inputs)
        if run_key is not None and run_key in runs.list_runs(ctx.dataset):
            cfg = ctx.dataset.get_run_info(run_key).config
            inputs.view(
                "clear_notice",
                types.Warning(
                    label=f"Deletes fields {', '.join(cfg.output_fields)}"
                    + (f" and the '{cfg.tag}' tags it added" if cfg.tag else "")
                ),
            )
        return types.Property(inputs, view=types.View(label="Clear results"))

    def execute(self, ctx):
        run_key = ctx.params["run_key"]
        runs.delete_run(ctx.dataset, run_key)
        ctx.ops.reload_dataset()
        return {"deleted": run_key}
