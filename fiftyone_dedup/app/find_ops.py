"""The find operators: duplicates within the target
(:class:`FindDuplicates`) and between it and other datasets
(:class:`FindCrossDuplicates`), over
:func:`fiftyone_dedup.engine.find.find_duplicates` and
:func:`~fiftyone_dedup.engine.find.find_cross_duplicates`.
"""

import logging

import fiftyone as fo
import fiftyone.operators.types as types

from fiftyone_dedup import options
from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.algorithms import models
from fiftyone_dedup.app import appui
from fiftyone_dedup.app import base
from fiftyone_dedup.app import find_forms
from fiftyone_dedup.app import forms
from fiftyone_dedup.app import run_ops
from fiftyone_dedup.engine import encodings
from fiftyone_dedup.engine import field_names
from fiftyone_dedup.engine import find
from fiftyone_dedup.engine import runs

logger = logging.getLogger(__name__)

#: what a duplicates result shows: summary key -> label
SUMMARY_LABELS = {
    "num_groups": "Groups",
    "num_duplicates": "Duplicates (tagged)",
    "num_samples": "Samples searched",
    "num_failed": "Unreadable images (skipped)",
    "seconds": "Seconds",
}

#: what a cross-dataset run's result shows: key -> label
CROSS_LABELS = {
    "num_cross": "Duplicates of a sample in another dataset",
    **{k: v for k, v in SUMMARY_LABELS.items() if k != "seconds"},
}


def _summary_values(results, labels):
    summary = results.summary
    return {key: summary.get(key) for key in labels}


def found_messages(ctx, results, view, title, labels, notes, buttons=()):
    """The result dialog of a find (with the unreadable files of ``view``
    named after ``notes``) and its notification.

    Returns:
        the messages, which a generator operator must also yield
    """
    summary = results.summary
    failures = encodings.get_failures(view, results.config.field)
    note = appui.failures_note(failures, summary["num_failed"])
    return [
        appui.result_dialog(
            ctx, title, appui.rows(labels, summary),
            notes=list(notes) + ([note] if note else []), buttons=buttons,
        ),
        ctx.ops.notify(
            appui.summary_text(summary),
            variant="warning" if summary["num_failed"] else "success",
        ),
    ]


def _result_notes(summary, shown):
    if not summary["num_groups"]:
        return ["No duplicates at this threshold."]
    if shown:
        return [
            "The App now shows the groups: each kept sample, then its "
            "duplicates, nearest first."
        ]
    return [
        "Review them with **Show the groups** below, or later with "
        "**Dedup: show duplicate groups**."
    ]


def _run_find(operator, sample_collection, params, delegate):
    """Runs a find operator from Python.

    Returns:
        the run's summary dict, or the ``ExecutionResult`` of a scheduled run
    """
    result = operator.run(sample_collection, params, delegate)
    if delegate:
        return result
    return runs.load_run(sample_collection, params["run_key"]).summary


class FindDuplicates(base.RunOperator):
    """Finds near-duplicates, keeps one per group and tags the others."""

    name = "find_duplicates"
    label = "Dedup: find duplicates"
    description = (
        "Find near-duplicate images, keep one per group and tag the others 'duplicate'"
    )
    title = "Finding duplicates"
    form_label = "Find duplicates"
    result_labels = SUMMARY_LABELS
    result_title = "Duplicates found"

    def __call__(
        self,
        sample_collection,
        threshold=None,
        encoder="dhash",
        field=None,
        run_key=field_names.DEFAULT_RUN_KEY,
        keep="first",
        priority=None,
        grouping="near",
        guard="kept",
        min_samples=1,
        invariance=None,
        tag=field_names.DEFAULT_TAG,
        model=None,
        verify="orb",
        delegate=False,
    ):
        """Finds duplicates through the operator (see
        :func:`fiftyone_dedup.engine.find.find_duplicates`).

        Args:
            sample_collection: a dataset or view
            threshold (None): the threshold; defaults to the encoder's
            encoder ("dhash"): the encoder
            field (None): the encodings field; defaults to the encoder's
            run_key ("dedup"): the run key
            keep ("first"): the keep policy (a name, ``"max:<field>"`` or
                ``"min:<field>"``)
            priority (None): for ``keep="priority"``, datasets or folders
            grouping ("near"): ``"near"``, ``"components"`` or ``"dbscan"``
            guard ("kept"): ``"kept"`` or ``"complete"``
            min_samples (1): DBSCAN's ``min_samples``
            invariance (None): ``"flip"``, ``"rotation"`` or ``"dihedral"``
            tag ("duplicate"): the tag for duplicates
            model (None): CNN: the model name or embeddings field; defaults
                to ``"efficientnet-lite0"``
            verify ("orb"): ``"orb"`` or ``"none"`` (see
                :func:`fiftyone_dedup.engine.find.find_duplicates`)
            delegate (False): schedule instead of running now

        Returns:
            the run's summary dict, or the ``ExecutionResult`` of a
            scheduled run
        """
        spec = encoders.get_encoder(encoder)
        options.EncodeOptions(encoder=spec, model=model).validated()  # model: CNN only
        params = {
            "encoder": spec.name,
            forms.threshold_key(spec): (
                spec.default_threshold if threshold is None else threshold
            ),
            "field": field or spec.default_field,
            "run_key": run_key,
            "keep": keep,
            "tag": tag,
            "open_view": False,
            "advanced": True,
            "grouping": grouping,
            "guard": guard,
            "min_samples": min_samples,
            "invariance": invariance or "none",
            "verify": verify or "none",
        }
        if priority:
            params["priority"] = list(priority)
        if spec.uses_model:
            params["model"] = model or models.DEFAULT_MODEL
        return _run_find(self, sample_collection, params, delegate)

    def form(self, ctx, inputs):
        view = forms.target_inputs(ctx, inputs, "search")
        if view is None:
            return
        spec = forms.encoder_inputs(ctx, inputs)
        forms.threshold_input(inputs, spec)
        find_forms.verify_input(inputs)
        if spec.uses_model:
            forms.model_input(ctx, inputs, view)
        find_forms.keep_input(ctx, inputs, view)
        find_forms.grouping_inputs(ctx, inputs, spec)
        forms.run_key_input(ctx, inputs, view)
        field = forms.field_input(ctx, inputs, spec)
        if field is not None:
            find_forms.encodings_notice(inputs, view, spec, field)
        inputs.str(
            "tag",
            default=field_names.DEFAULT_TAG,
            required=False,
            label="Tag",
            description="The tag added to each duplicate",
        )
        inputs.bool(
            "open_view",
            default=True,
            label="Show the groups when done",
            description=(
                "Set the App's view to the groups found: each kept "
                "sample followed by its duplicates"
            ),
        )
        forms.executor_inputs(ctx, inputs)
        find_forms.check_find_options(inputs, ctx.params, spec, view)

    def work(self, ctx):
        view = ctx.target_view()
        spec = encoders.get_encoder(ctx.params.get("encoder", "cnn"))
        kwargs = find_forms.find_kwargs(ctx.params, spec, view)
        find_forms.validate_find(kwargs)
        return lambda progress: find.find_duplicates(view, progress=progress, **kwargs)

    def record(self, results):
        return _summary_values(results, SUMMARY_LABELS)

    def show(self, ctx, results):
        run_key = ctx.params.get("run_key", field_names.DEFAULT_RUN_KEY)
        summary = results.summary
        shown = ctx.params.get("open_view", True) and summary["num_groups"]
        if shown:
            yield from run_ops.show_groups(ctx, results.view(), run_key)
        buttons = []
        if summary["num_groups"] and not shown:
            buttons.append((
                "show_groups", "Show the groups", base.uri("show_duplicates"),
                {"run_key": run_key, "role": "all"},
            ))
        yield from found_messages(
            ctx, results, ctx.target_view(), f"Duplicates found (run '{run_key}')",
            SUMMARY_LABELS, _result_notes(summary, shown), buttons=buttons,
        )


def _cross_note(summary, shown):
    if not summary["num_cross"]:
        return "No duplicates across the datasets at this threshold."
    if shown:
        return (
            "The App now shows this target's samples that duplicate a sample "
            "in another dataset."
        )
    return "Review them with **Dedup: show duplicate groups** (cross-dataset hits)."


def _cross_mode(params):
    return "union" if params.get("mode", "query") == "union" else "query"


class FindCrossDuplicates(base.RunOperator):
    """Finds duplicates between this dataset (or view) and other datasets."""

    name = "find_cross_duplicates"
    label = "Dedup: find duplicates across datasets"
    description = (
        "Which images of this target are already in other datasets "
        "(query vs reference), or duplicates within and across them"
    )
    title = "Finding duplicates across datasets"
    form_label = "Find duplicates across datasets"
    result_labels = CROSS_LABELS
    result_title = "Cross-dataset duplicates found"

    def __call__(
        self, sample_collection, datasets, mode="query", threshold=None,
        encoder="dhash", run_key=field_names.DEFAULT_RUN_KEY, write_reference=True,
        delegate=False,
    ):
        """Runs the operator from Python.

        Args:
            sample_collection: the query dataset or view
            datasets: names of the other datasets
            mode ("query"): ``"query"`` (against the others as reference) or
                ``"union"`` (within and across all)
            threshold (None): the threshold; defaults to the encoder's
            encoder ("dhash"): the encoder
            run_key ("dedup"): the run key in every dataset
            write_reference (True): record the run in the reference datasets
            delegate (False): schedule instead of running now

        Returns:
            the run's summary dict, or the ``ExecutionResult`` of a
            scheduled run
        """
        spec = encoders.get_encoder(encoder)
        params = dict(
            datasets=list(datasets), mode=mode, encoder=spec.name,
            threshold=spec.default_threshold if threshold is None else threshold,
            run_key=run_key, write_reference=write_reference, open_view=False,
        )
        return _run_find(self, sample_collection, params, delegate)

    def form(self, ctx, inputs):
        view = forms.target_inputs(ctx, inputs, "search")
        if view is None:
            return
        others = [n for n in fo.list_datasets() if n != ctx.dataset.name]
        choices = types.DropdownView(multiple=True)
        for name in others:
            choices.add_choice(name, label=name)
        prop = inputs.list(
            "datasets",
            types.String(),
            required=True,
            label="Other datasets",
            description="The datasets to compare this target with",
            view=choices,
        )
        picked = ctx.params.get("datasets") or []
        missing = [d for d in picked if d not in others]
        if not others:
            forms.mark_invalid(prop, "There are no other datasets")
        elif missing:
            forms.mark_invalid(prop, f"Unknown dataset(s): {', '.join(missing)}")
        modes = forms.choices(
            types.RadioGroup(),
            (
                "query", "Against them (query vs reference)",
                "Only pairs between this target and the others: which of these images "
                "are already there; the others always keep",
            ),
            ("union", "Within and across all", "Duplicates anywhere in this target and the others"),
        )
        inputs.enum("mode", modes.values(), default="query", label="Search", view=modes)
        spec = forms.encoder_inputs(ctx, inputs)
        forms.threshold_input(inputs, spec)
        if spec.uses_model:
            forms.model_input(ctx, inputs, view)
        forms.run_key_input(ctx, inputs, view)
        mode = ctx.params.get("mode", "query")
        if mode == "query":
            inputs.bool(
                "write_reference",
                default=True,
                label="Record the run in the other datasets too",
                description="Off leaves the reference datasets untouched",
            )
        if mode == "union" or ctx.params.get("write_reference", True):
            find_forms.others_replaced_notice(
                inputs, [d for d in picked if d in others],
                ctx.params.get("run_key") or field_names.DEFAULT_RUN_KEY,
            )
        inputs.bool("open_view", default=True, label="Show the matches when done")
        forms.executor_inputs(ctx, inputs)
        find_forms.check_find_options(inputs, ctx.params, spec, view, _cross_mode(ctx.params))

    def work(self, ctx):
        view = ctx.target_view()
        params = ctx.params
        spec = encoders.get_encoder(params.get("encoder", "cnn"))
        mode = _cross_mode(params)
        kwargs = find_forms.find_kwargs(params, spec, view, mode)
        find_forms.validate_find(kwargs, mode)
        names = params.get("datasets") or []

        def work(progress):
            others = [fo.load_dataset(name) for name in names]
            if mode == "union":
                return find.find_duplicates([view] + others, progress=progress, **kwargs)
            return find.find_cross_duplicates(view, others, progress=progress, **kwargs)

        return work

    def record(self, results):
        return _summary_values(results, CROSS_LABELS)

    def show(self, ctx, results):
        from fiftyone_dedup.engine import review

        view = ctx.target_view()
        run_key = ctx.params.get("run_key") or field_names.DEFAULT_RUN_KEY
        summary = results.summary
        shown = ctx.params.get("open_view", True) and summary["num_cross"]
        if shown:
            yield ctx.ops.set_view(review.build_view(view, run_key, "cross"))
        notes = [_cross_note(summary, shown)]
        per = summary.get("datasets") or {}
        if per:
            notes.append("\n".join(
                f"- `{name}`: {d['samples']} sample(s), {d['duplicates']} "
                f"duplicate(s), {d['cross']} of them in another dataset"
                for name, d in per.items()
            ))
        yield from found_messages(
            ctx, results, view, f"Cross-dataset duplicates found (run '{run_key}')",
            CROSS_LABELS, notes,
        )
