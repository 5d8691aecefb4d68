"""FiftyOne operators: thin forms over :mod:`fiftyone_dedup.core`.

Each operator's ``execute`` reads its parameters and calls one engine
function. Long operators run as generators so that the App shows progress
when they run immediately; delegated (scheduled) runs report progress through
``ctx.set_progress``. From Python, call an operator like a function: it runs
through ``foo.execute_operator`` and returns the run's summary.
"""

import logging
import queue
import threading

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_dedup import core
from fiftyone_dedup import encoders
from fiftyone_dedup import hashing
from fiftyone_dedup import keep as keep_policies
from fiftyone_dedup import models
from fiftyone_dedup import progress as fprogress

logger = logging.getLogger(__name__)

PLUGIN_NAME = "@fiftyone_dedup/dedup"


def _uri(name):
    return f"{PLUGIN_NAME}/{name}"


# ---------------------------------------------------------------- execution


def _run_in_app(ctx, work):
    """Runs ``work(progress)`` and yields App progress messages meanwhile.

    Delegated runs report through ``ctx.set_progress`` and run inline; an
    immediate run works in a thread while this generator streams progress
    to the App.

    Args:
        ctx: the execution context
        work: a function of a ``progress`` callable returning a result

    Yields:
        App messages

    Returns:
        what ``work`` returned (use ``result = yield from _run_in_app(...)``)
    """
    if ctx.delegated:
        def report(fraction, label):
            ctx.set_progress(progress=fraction, label=label)

        return work(fprogress.callback(report, dt=1.0))

    box = {}

    updates = queue.Queue()

    def report(fraction, label):
        updates.put((fraction, label))

    def target():
        try:
            box["result"] = work(fprogress.callback(report, dt=0.25))
        except BaseException as e:  # noqa: BLE001 - re-raised below
            box["error"] = e
        finally:
            updates.put(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while True:
        item = updates.get()
        if item is None:
            break
        fraction, label = item
        yield ctx.trigger(
            "set_progress", dict(progress=fraction, label=label or "Working")
        )
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def _execute_operator(operator, sample_collection, params, delegate):
    if isinstance(sample_collection, fo.DatasetView):
        ctx = dict(view=sample_collection)
    else:
        ctx = dict(dataset=sample_collection)
    return foo.execute_operator(
        operator.uri, ctx, params=params, request_delegation=delegate
    )


# ------------------------------------------------------------- form pieces


def _target_inputs(ctx, inputs, what):
    """Notes how many samples the target holds; flags an empty target.

    Returns:
        the target view, or None if it is empty
    """
    view = ctx.target_view()
    n = len(view)
    if n == 0:
        prop = inputs.view(
            "empty_target",
            types.Warning(
                label="Nothing to process",
                description=f"The chosen target has no samples to {what}.",
            ),
        )
        prop.invalid = True
        prop.error_message = "The target has no samples"
        return None
    inputs.view(
        "target_size",
        types.Notice(label=f"{n} sample(s) will be {what}ed"),
    )
    return view


def _encoder_inputs(ctx, inputs, hashes_only=False):
    choices = types.DropdownView()
    for spec in encoders.ENCODERS.values():
        if hashes_only and not spec.is_hash:
            continue
        choices.add_choice(
            spec.name,
            label=spec.label,
            description=_encoder_description(spec),
        )
    inputs.enum(
        "encoder",
        choices.values(),
        default="dhash",
        required=False,
        label="Encoder",
        description=(
            "How images are compared: a 64-bit perceptual hash (fast, finds "
            "resized, re-encoded and colour-adjusted copies), or CNN "
            "embeddings (also finds crops, rotations, flips, stamps)"
        ),
        view=choices,
    )
    return encoders.get_encoder(ctx.params.get("encoder") or "dhash")


def _encoder_description(spec):
    if spec.name == "dhash":
        return "Difference hash (imagededup's DHash): the usual choice"
    if spec.is_hash:
        return f"{spec.label} perceptual hash (imagededup's algorithm)"
    return "CNN embeddings: also finds heavier edits and near-identical shots"


def _threshold_key(spec):
    # One form key per metric, so that switching encoders in the App shows
    # the new encoder's default instead of keeping the other's value
    return "threshold" if spec.is_hash else "similarity"


def _threshold_param(params, spec):
    """The threshold in the params, for the encoder ``spec``."""
    value = params.get(_threshold_key(spec))
    if value is None and not spec.is_hash:
        value = params.get("threshold")  # what SDK callers may pass
    return value


def _threshold_input(ctx, inputs, spec):
    value = ctx.params.get(_threshold_key(spec))
    label = "Threshold (bits)" if spec.is_hash else "Minimum similarity"
    kwargs = dict(
        default=spec.default_threshold,
        required=False,
        label=label,
        description=spec.threshold_help[0].upper() + spec.threshold_help[1:],
    )
    if spec.is_hash:
        prop = inputs.int(_threshold_key(spec), **kwargs)
    else:
        prop = inputs.float(_threshold_key(spec), min=-1.0, max=1.0, **kwargs)
    if value is not None:
        try:
            spec.validate_threshold(value)
        except ValueError as e:
            prop.invalid = True
            prop.error_message = str(e)


def _model_input(ctx, inputs, view):
    """The embedding model: a name, or an embeddings field of the dataset."""
    schema = view._root_dataset.get_field_schema()
    vector_fields = sorted(
        name
        for name, f in schema.items()
        if isinstance(f, (fo.VectorField, fo.ArrayField))
    )
    choices = types.AutocompleteView()
    for name in models.BUILTIN_MODELS + tuple(vector_fields):
        choices.add_choice(name, label=name)
    prop = inputs.str(
        "model",
        default=models.DEFAULT_MODEL,
        required=False,
        label="Model",
        description=(
            f"{models.DEFAULT_MODEL} (default) is pretrained and needs no "
            "download; imagededup's mobilenet_v3_small, efficientnet_b4 and "
            "vit_b_16 and FiftyOne zoo models download their weights on "
            "first use; an embeddings field of this dataset is used as is"
        ),
        view=choices,
    )
    name = ctx.params.get("model") or models.DEFAULT_MODEL
    if name in schema:
        return name
    try:
        models.model_name(name)
    except ValueError as e:
        prop.invalid = True
        prop.error_message = str(e)
    return name


def _run_key_input(ctx, inputs, view, default=core.DEFAULT_RUN_KEY):
    prop = inputs.str(
        "run_key",
        default=default,
        required=False,
        label="Run key",
        description=(
            "Names this run and prefixes the fields it writes "
            "(<key>_group, <key>_role, <key>_kept_id, and <key>_distance "
            "for hashes or <key>_similarity for CNN)"
        ),
    )
    run_key = ctx.params.get("run_key", default)
    if run_key is None:
        return
    try:
        core.validate_run_key(run_key)
        core._check_run_key_free(view, run_key)
    except ValueError as e:
        prop.invalid = True
        prop.error_message = str(e)
        return
    if run_key in core.list_runs(view):
        inputs.view(
            "replace_notice",
            types.Notice(
                label=f"Run '{run_key}' exists and will be replaced "
                "(its fields and tags are removed first)"
            ),
        )


def _keep_input(ctx, inputs):
    choices = types.DropdownView()
    for policy in keep_policies.POLICIES:
        choices.add_choice(policy, label=policy)
    inputs.enum(
        "keep",
        choices.values(),
        default="first",
        required=False,
        label="Keep",
        description="Which member of each group is kept",
        view=choices,
    )


def _field_input(ctx, inputs, spec):
    prop = inputs.str(
        "field",
        default=spec.default_field,
        required=False,
        label="Encodings field",
        description="The sample field that holds (or will hold) the encodings",
    )
    name = ctx.params.get("field", spec.default_field)
    if name is not None:
        try:
            core.validate_field_name(name)
        except ValueError as e:
            prop.invalid = True
            prop.error_message = str(e)
    return name


# ----------------------------------------------------------------- operators


class ComputeHashes(foo.Operator):
    """Computes perceptual hashes of the target's images as a sample field."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_hashes",
            label="Dedup: compute hashes",
            description="Compute perceptual hashes (DHash) of images",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def __call__(
        self, sample_collection, field=None, method="dhash", overwrite=False,
        delegate=False,
    ):
        """Computes hashes through the operator (see
        :func:`fiftyone_dedup.core.compute_hashes`).

        Args:
            sample_collection: a dataset or view
            field (None): the hash field; defaults to the method name
            method ("dhash"): the hash method
            overwrite (False): recompute stored hashes
            delegate (False): schedule instead of running now

        Returns:
            an ``ExecutionResult``
        """
        params = dict(
            encoder=method, field=field or method, overwrite=overwrite
        )
        return _execute_operator(self, sample_collection, params, delegate)

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = _target_inputs(ctx, inputs, "hash")
        if view is not None:
            spec = _encoder_inputs(ctx, inputs, hashes_only=True)
            _field_input(ctx, inputs, spec)
            inputs.bool(
                "overwrite",
                default=False,
                label="Recompute stored hashes",
                description=(
                    "Hashes of unchanged files are reused unless this is set"
                ),
            )
        return types.Property(inputs, view=types.View(label="Compute hashes"))

    def execute(self, ctx):
        view = ctx.target_view()
        method = hashing.validate_method(ctx.params.get("encoder", "dhash"))
        field = ctx.params.get("field") or method
        overwrite = bool(ctx.params.get("overwrite", False))

        def work(progress):
            return core.compute_hashes(
                view, field=field, method=method, overwrite=overwrite,
                progress=progress,
            )

        report = yield from _run_in_app(ctx, work)
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify(
                f"Hashed {report.num_computed} image(s), reused "
                f"{report.num_reused}, {report.num_failed} failed",
                variant="warning" if report.num_failed else "success",
            )


class ComputeEmbeddings(foo.Operator):
    """Computes CNN embeddings of the target's images as a vector field."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_embeddings",
            label="Dedup: compute embeddings",
            description=(
                "Compute CNN embeddings of images (EfficientNet-Lite0 by "
                "default, pretrained, no download)"
            ),
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def __call__(
        self, sample_collection, model=None, field=None, batch_size=None,
        overwrite=False, delegate=False,
    ):
        """Computes embeddings through the operator (see
        :func:`fiftyone_dedup.core.compute_embeddings`).

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
            field=field or encoders.ENCODERS["cnn"].default_field,
            overwrite=overwrite,
        )
        if batch_size is not None:
            params["batch_size"] = batch_size
        return _execute_operator(self, sample_collection, params, delegate)

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = _target_inputs(ctx, inputs, "embedd")
        if view is not None:
            _model_input(ctx, inputs, view)
            _field_input(ctx, inputs, encoders.ENCODERS["cnn"])
            prop = inputs.int(
                "batch_size",
                required=False,
                label="Batch size",
                description=(
                    "Images per batch (default: 16 on the CPU, 64 on a GPU)"
                ),
            )
            size = ctx.params.get("batch_size")
            if size is not None and size < 1:
                prop.invalid = True
                prop.error_message = "The batch size must be at least 1"
            inputs.bool(
                "overwrite",
                default=False,
                label="Recompute stored embeddings",
                description=(
                    "Embeddings of unchanged files by the same model are "
                    "reused unless this is set"
                ),
            )
        return types.Property(
            inputs, view=types.View(label="Compute embeddings")
        )

    def execute(self, ctx):
        view = ctx.target_view()
        params = ctx.params
        model = params.get("model") or models.DEFAULT_MODEL
        field = params.get("field") or encoders.ENCODERS["cnn"].default_field
        if model in view._root_dataset.get_field_schema():
            field = None  # an embeddings field, used as is

        def work(progress):
            return core.compute_embeddings(
                view,
                model=model,
                field=field,
                batch_size=params.get("batch_size"),
                overwrite=bool(params.get("overwrite", False)),
                progress=progress,
            )

        report = yield from _run_in_app(ctx, work)
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify(
                f"Embedded {report.num_computed} image(s), reused "
                f"{report.num_reused}, {report.num_failed} failed",
                variant="warning" if report.num_failed else "success",
            )


class FindDuplicates(foo.Operator):
    """Finds near-duplicates, keeps one per group and tags the others."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="find_duplicates",
            label="Dedup: find duplicates",
            description=(
                "Find near-duplicate images, keep one per group and tag "
                "the others 'duplicate'"
            ),
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def __call__(
        self,
        sample_collection,
        threshold=None,
        encoder="dhash",
        field=None,
        run_key=core.DEFAULT_RUN_KEY,
        keep="first",
        tag=core.DEFAULT_TAG,
        model=None,
        delegate=False,
    ):
        """Finds duplicates through the operator (see
        :func:`fiftyone_dedup.core.find_duplicates`).

        Args:
            sample_collection: a dataset or view
            threshold (None): the threshold; defaults to the encoder's
            encoder ("dhash"): the encoder
            field (None): the encodings field; defaults to the encoder's
            run_key ("dedup"): the run key
            keep ("first"): the keep policy
            tag ("duplicate"): the tag for duplicates
            model (None): CNN: the model name or embeddings field; defaults
                to ``"efficientnet-lite0"``
            delegate (False): schedule instead of running now

        Returns:
            the run's summary dict, or the ``ExecutionResult`` of a
            scheduled run
        """
        spec = encoders.get_encoder(encoder)
        params = {
            "encoder": spec.name,
            _threshold_key(spec): (
                spec.default_threshold if threshold is None else threshold
            ),
            "field": field or spec.default_field,
            "run_key": run_key,
            "keep": keep,
            "tag": tag,
            "open_view": False,
        }
        if not spec.is_hash:
            params["model"] = model or models.DEFAULT_MODEL
        elif model is not None:
            raise ValueError(
                f"model applies to the CNN encoder, not {spec.label}"
            )
        result = _execute_operator(self, sample_collection, params, delegate)
        if delegate:
            return result
        return core.load_run(sample_collection, run_key).summary

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = _target_inputs(ctx, inputs, "search")
        if view is not None:
            spec = _encoder_inputs(ctx, inputs)
            _threshold_input(ctx, inputs, spec)
            if not spec.is_hash:
                _model_input(ctx, inputs, view)
            _keep_input(ctx, inputs)
            _run_key_input(ctx, inputs, view)
            _field_input(ctx, inputs, spec)
            inputs.str(
                "tag",
                default=core.DEFAULT_TAG,
                required=False,
                label="Tag",
                description="The tag added to each duplicate",
            )
            inputs.bool(
                "open_view",
                default=True,
                label="Show the groups when done",
                description="Set the App's view to the groups found",
            )
        return types.Property(inputs, view=types.View(label="Find duplicates"))

    def execute(self, ctx):
        view = ctx.target_view()
        params = ctx.params
        spec = encoders.get_encoder(params.get("encoder", "dhash"))
        run_key = params.get("run_key", core.DEFAULT_RUN_KEY)
        model, field = None, params.get("field") or spec.default_field
        if not spec.is_hash:
            model = params.get("model") or models.DEFAULT_MODEL
            if model in view._root_dataset.get_field_schema():
                field = None  # an embeddings field, used as is

        def work(progress):
            return core.find_duplicates(
                view,
                threshold=_threshold_param(params, spec),
                encoder=spec.name,
                field=field,
                model=model,
                run_key=run_key,
                keep=params.get("keep", "first"),
                tag=params.get("tag", core.DEFAULT_TAG),
                progress=progress,
            )

        results = yield from _run_in_app(ctx, work)
        if ctx.delegated:
            return
        yield ctx.ops.reload_dataset()
        if params.get("open_view", True) and results.summary["num_groups"]:
            yield ctx.ops.set_view(results.view())
        yield ctx.ops.notify(_summary_text(results.summary))

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="Summary")
        return types.Property(outputs, view=types.View(label="Duplicates found"))


def _summary_text(summary):
    text = (
        f"{summary['num_duplicates']} duplicate(s) in {summary['num_groups']} "
        f"group(s) among {summary['num_samples']} sample(s)"
    )
    if summary.get("num_failed"):
        text += f"; {summary['num_failed']} image(s) could not be read"
    return text


class ShowDuplicates(foo.Operator):
    """Sets the App's view to a run's groups."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="show_duplicates",
            label="Dedup: show duplicate groups",
            description="Show the groups of a duplicates run",
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        _existing_run_input(ctx, inputs)
        choices = types.RadioGroup()
        choices.add_choice("all", label="All group members")
        choices.add_choice("kept", label="Kept samples only")
        choices.add_choice("duplicate", label="Duplicates only")
        inputs.enum(
            "role", choices.values(), default="all", label="Show", view=choices
        )
        return types.Property(inputs, view=types.View(label="Show duplicates"))

    def execute(self, ctx):
        role = ctx.params.get("role", "all")
        view = core.duplicates_view(
            ctx.dataset,
            ctx.params["run_key"],
            role=None if role == "all" else role,
        )
        ctx.ops.set_view(view)
        return {"num_samples": len(view)}


def _existing_run_input(ctx, inputs):
    run_keys = core.list_runs(ctx.dataset) if ctx.dataset is not None else []
    if not run_keys:
        prop = inputs.view(
            "no_runs",
            types.Warning(
                label="No duplicates runs",
                description="Run 'Dedup: find duplicates' first.",
            ),
        )
        prop.invalid = True
        prop.error_message = "This dataset has no duplicates runs"
        return None
    choices = types.DropdownView()
    for key in run_keys:
        choices.add_choice(key, label=key)
    inputs.enum(
        "run_key",
        choices.values(),
        default=run_keys[0],
        required=False,
        label="Run",
        view=choices,
    )
    return ctx.params.get("run_key", run_keys[0])


class ClearDuplicates(foo.Operator):
    """Deletes a duplicates run with its fields and tags."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="clear_duplicates",
            label="Dedup: clear results",
            description=(
                "Delete a duplicates run and the fields and tags it wrote "
                "(images and encodings are untouched)"
            ),
            dynamic=True,
            view_target=False,
        )

    def __call__(self, sample_collection, run_key=core.DEFAULT_RUN_KEY):
        """Deletes a run through the operator.

        Args:
            sample_collection: a dataset or view
            run_key ("dedup"): the run key

        Returns:
            an ``ExecutionResult``
        """
        return _execute_operator(
            self, sample_collection, dict(run_key=run_key), False
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        run_key = _existing_run_input(ctx, inputs)
        if run_key is not None and run_key in core.list_runs(ctx.dataset):
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
        core.delete_run(ctx.dataset, run_key)
        ctx.ops.reload_dataset()
        return {"deleted": run_key}


OPERATORS = (
    ComputeHashes,
    ComputeEmbeddings,
    FindDuplicates,
    ShowDuplicates,
    ClearDuplicates,
)


def register(p):
    """Registers the plugin's operators.

    Args:
        p: the ``PluginContext``
    """
    for cls in OPERATORS:
        p.register(cls)
