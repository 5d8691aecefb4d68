"""The encode operators: perceptual hashes (:class:`ComputeHashes`) and CNN
embeddings (:class:`ComputeEmbeddings`) as sample fields, over
:func:`fiftyone_dedup.engine.encodings.compute_hashes` and
:func:`~fiftyone_dedup.engine.embedding_fields.compute_embeddings`.
"""

import logging

import fiftyone.operators as foo

from fiftyone_dedup import options
from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.algorithms import hashing
from fiftyone_dedup.algorithms import models
from fiftyone_dedup.app import appui
from fiftyone_dedup.app import base
from fiftyone_dedup.app import forms
from fiftyone_dedup.engine import embedding_fields
from fiftyone_dedup.engine import encodings

logger = logging.getLogger(__name__)

#: what a hashing result shows: key -> label
REPORT_LABELS = {
    "field": "Field",
    "num_computed": "Files read now",
    "num_reused": "Reused (file unchanged)",
    "num_failed": "Unreadable images",
}

_CNN = encoders.ENCODERS["cnn"]


def _report_values(report):
    return {key: getattr(report, key) for key in REPORT_LABELS}


def _encode_options(params, encoder, **kwargs):
    """The checked :class:`~fiftyone_dedup.options.EncodeOptions` of the form."""
    return options.EncodeOptions(
        encoder=encoder, overwrite=bool(params.get("overwrite", False)),
        **forms.executor_params(params), **kwargs,
    ).validated()


class ComputeHashes(base.RunOperator):
    """Computes perceptual hashes of the target's images as a sample field."""

    name = "compute_hashes"
    label = "Dedup: compute hashes"
    description = (
        "Compute perceptual hashes (DHash, PHash, AHash, WHash) of images as a sample field"
    )
    title = "Computing hashes"
    form_label = "Compute hashes"
    result_labels = REPORT_LABELS
    result_title = "Hashes computed"

    def __call__(
        self, sample_collection, field=None, method="dhash", overwrite=False,
        delegate=False,
    ):
        """Computes hashes through the operator (see
        :func:`fiftyone_dedup.engine.encodings.compute_hashes`).

        Args:
            sample_collection: a dataset or view
            field (None): the hash field; defaults to the method name
            method ("dhash"): the hash method
            overwrite (False): recompute stored hashes
            delegate (False): schedule instead of running now

        Returns:
            an ``ExecutionResult``
        """
        params = dict(encoder=method, field=field or method, overwrite=overwrite)
        return self.run(sample_collection, params, delegate)

    def form(self, ctx, inputs):
        view = forms.target_inputs(ctx, inputs, "hash")
        if view is None:
            return
        spec = forms.encoder_inputs(ctx, inputs, hashes_only=True)
        forms.field_input(ctx, inputs, spec)
        inputs.bool(
            "overwrite",
            default=False,
            label="Recompute stored hashes",
            description="Hashes of unchanged files are reused unless this is set",
        )
        forms.executor_inputs(ctx, inputs)

    def work(self, ctx):
        view = ctx.target_view()
        method = ctx.params.get("encoder", "dhash")
        field = ctx.params.get("field") or method
        method = options.check("encoder", hashing.validate_method, method)
        opts = _encode_options(ctx.params, method, field=field)

        def work(progress):
            return encodings.compute_hashes(
                view, field=opts.field, method=method, overwrite=opts.overwrite,
                progress=progress, **forms.executor_params(ctx.params),
            )

        return work

    def record(self, report):
        return _report_values(report)

    def show(self, ctx, report):
        note = appui.failures_note(report.failures)
        yield appui.result_dialog(
            ctx,
            "Hashes computed",
            appui.rows(REPORT_LABELS, _report_values(report)),
            notes=[note] if note else [],
        )
        yield ctx.ops.notify(
            f"{report.num_computed} image(s) read, {report.num_reused} "
            f"reused, {report.num_failed} unreadable",
            variant="warning" if report.num_failed else "success",
        )


class ComputeEmbeddings(base.RunOperator):
    """Computes CNN embeddings of the target's images as a vector field."""

    name = "compute_embeddings"
    label = "Dedup: compute embeddings"
    description = (
        "Compute CNN embeddings of images (EfficientNet-Lite0 by default, "
        "pretrained, no download)"
    )
    title = "Computing embeddings"
    form_label = "Compute embeddings"

    def __call__(
        self, sample_collection, model=None, field=None, batch_size=None,
        overwrite=False, delegate=False,
    ):
        """Computes embeddings through the operator (see
        :func:`fiftyone_dedup.engine.embedding_fields.compute_embeddings`).

        Args:
            sample_collection: a dataset or view
            model (None): a model name; defaults to ``"efficientnet-lite0"``
            field (None): the embeddings field; defaults to
                ``"cnn_embedding"``
            batch_size (None): images per batch
            overwrite (False): recompute stored embeddings
            delegate (False): schedule instead of running now

        Returns:
            an ``ExecutionResult``
        """
        params = dict(
            model=model or models.DEFAULT_MODEL,
            field=field or _CNN.default_field,
            overwrite=overwrite,
        )
        if batch_size is not None:
            params["batch_size"] = batch_size
        return self.run(sample_collection, params, delegate)

    def form(self, ctx, inputs):
        view = forms.target_inputs(ctx, inputs, "embedd")
        if view is None:
            return
        forms.model_input(ctx, inputs, view)
        forms.field_input(ctx, inputs, _CNN)
        prop = inputs.int(
            "batch_size",
            required=False,
            label="Batch size",
            description="Images per batch (default: 16 on the CPU, 64 on a GPU)",
        )
        size = ctx.params.get("batch_size")
        if size is not None and size < 1:
            forms.mark_invalid(prop, "The batch size must be at least 1")
        inputs.bool(
            "overwrite",
            default=False,
            label="Recompute stored embeddings",
            description=(
                "Embeddings of unchanged files by the same model are "
                "reused unless this is set"
            ),
        )
        forms.executor_inputs(ctx, inputs)

    def resolve_execution_options(self, ctx):
        # as before the operators were split: no scheduled default for
        # large targets here (the large-target notice says otherwise)
        return foo.Operator.resolve_execution_options(self, ctx)

    def work(self, ctx):
        view = ctx.target_view()
        model, field = forms.model_and_field(ctx.params, _CNN, view)
        opts = _encode_options(
            ctx.params, _CNN, model=model, field=field, batch_size=ctx.params.get("batch_size"),
        )

        def work(progress):
            return embedding_fields.compute_embeddings(
                view, model=opts.model, field=opts.field, batch_size=opts.batch_size,
                overwrite=opts.overwrite, progress=progress,
                **forms.executor_params(ctx.params),
            )

        return work

    def show(self, ctx, report):
        yield ctx.ops.notify(
            f"Embedded {report.num_computed} image(s), reused "
            f"{report.num_reused}, {report.num_failed} failed",
            variant="warning" if report.num_failed else "success",
        )
