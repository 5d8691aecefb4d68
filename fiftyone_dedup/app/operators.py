"""FiftyOne operators: thin forms over :mod:`fiftyone_dedup.engine.core`.

Each operator's ``execute`` reads its parameters and calls one engine
function. Long operators run as generators so that the App shows progress
when they run immediately; delegated (scheduled) runs report progress through
``ctx.set_progress``. From Python, call an operator like a function: it runs
through ``foo.execute_operator`` and returns the run's summary.
"""

import errno
import logging
import os
import queue
import threading

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone.operators.constants import ViewTarget

from fiftyone_dedup.moves import actions
from fiftyone_dedup.app import appui
from fiftyone_dedup.engine import core
from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.algorithms import hashing
from fiftyone_dedup.algorithms import keep as keep_policies
from fiftyone_dedup.algorithms import models
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
        return _run_delegated(ctx, work)

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


def _shown_errors(ctx, title, messages):
    """Yields an App generator's messages; an exception it raises is shown
    as an error dialog and notification (FiftyOne drops exceptions raised in
    a generator operator: nothing would reach the screen).

    Args:
        ctx: the execution context
        title: what the run does, such as ``"Moving duplicates"``
        messages: the operator's generator of App messages

    Yields:
        App messages
    """
    if not ctx.request_params.get("operator_uri"):
        # only the App's requests name the operator: Python callers
        # (foo.execute_operator) get the exception itself
        yield from messages
        return
    try:
        yield from messages
    except Exception as e:  # noqa: BLE001 - shown in the App, and logged
        logger.warning("%s failed: %s", title, e, exc_info=True)
        yield from appui.error_messages(ctx, title, e)


def _run_delegated(ctx, work):
    """Runs ``work(progress)`` in a delegated (scheduled) run, reporting
    progress and the stage label on the run's record.

    Args:
        ctx: the execution context
        work: a function of a ``progress`` callable returning a result

    Returns:
        what ``work`` returned
    """

    def report(fraction, label):
        ctx.set_progress(progress=fraction, label=label)

    return work(fprogress.callback(report, dt=1.0))


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
    # the whole dataset unless samples are selected (not the last results)
    inputs.view_target(
        ctx,
        default_target=ViewTarget.SELECTED_SAMPLES if ctx.selected else ViewTarget.DATASET,
    )
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
    appui.large_target_notice(inputs, n)
    return view


def _execution_options(ctx):
    """Both immediate and scheduled runs; scheduled by default when large."""
    try:
        n = len(ctx.target_view())
    except Exception:  # noqa: BLE001 - no dataset yet: let the form say so
        n = None
    return appui.execution_options(n)


def _executor_inputs(ctx, inputs):
    """Where the run's heavy steps run: here, or a Ray cluster (for
    scheduled runs on large datasets)."""
    choices = types.RadioGroup()
    choices.add_choice("local", label="This machine")
    choices.add_choice("ray", label="Ray cluster (pip install fiftyone-dedup[ray])")
    inputs.enum(
        "executor", choices.values(), default="local", label="Run on", view=choices,
        description="A Ray cluster gives the same results; its workers must "
        "see the images and this database",
    )
    if ctx.params.get("executor") == "ray":
        inputs.str(
            "ray_address", required=False, label="Ray address",
            description="Default: RAY_ADDRESS, else a local Ray for the run",
        )


def _executor_params(params):
    if params.get("executor", "local") != "ray":
        return {}
    return {"executor": "ray", "ray_address": params.get("ray_address") or None}


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
    default = "dhash" if hashes_only else "cnn"  # the CLI's default
    inputs.enum(
        "encoder",
        choices.values(),
        default=default,
        required=False,
        label="Encoder",
        description=(
            "How images are compared: a 64-bit perceptual hash (fast, finds "
            "resized, re-encoded and colour-adjusted copies)"
            + ("" if hashes_only else ", or CNN embeddings (also finds crops, "
               "rotations, flips, stamps)")
        ),
        view=choices,
    )
    try:
        return encoders.get_encoder(ctx.params.get("encoder") or default)
    except ValueError:
        return encoders.get_encoder("dhash")  # the enum flags the bad value


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
            prop.error_message = _sentence(str(e))


def _sentence(text):
    return text[:1].upper() + text[1:]


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
    problem = models.missing_weights(name)
    if problem:
        inputs.view("model_offline", types.Warning(label="Needs a download", description=problem))
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
        core.check_run_key_free(view, run_key)
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


_KEEP_LABELS = {
    "first": "First in order",
    "largest_resolution": "Largest resolution",
    "largest_file": "Largest file",
    "most_labels": "Most labels",
    "oldest": "Oldest file",
    "newest": "Newest file",
    "priority": "By dataset / folder priority",
}


def _run_output_fields(dataset):
    """The fields this plugin's runs wrote (not offered as keep criteria)."""
    own = set()
    for key in core.list_runs(dataset):
        own.update(_run_fields(dataset, key))
    return own


def _keep_input(ctx, inputs, view):
    """The keep policy: named policies, plus highest/lowest of any numeric
    field of the target."""
    choices = types.DropdownView()
    for policy in keep_policies.POLICIES:
        choices.add_choice(policy, label=_KEEP_LABELS.get(policy, policy))
    numeric = (fo.IntField, fo.FloatField, fo.DateTimeField, fo.DateField)
    own = _run_output_fields(view._root_dataset)
    for name, field in sorted(view.get_field_schema().items()):
        if isinstance(field, numeric) and not name.startswith("_") and name not in own:
            choices.add_choice(f"max:{name}", label=f"Highest {name}")
            choices.add_choice(f"min:{name}", label=f"Lowest {name}")
    inputs.enum(
        "keep",
        choices.values(),
        default="first",
        required=False,
        label="Keep",
        description="Which member of each group is kept; ties go to the first",
        view=choices,
    )
    if ctx.params.get("keep") == "priority":
        prop = inputs.list(
            "priority",
            types.String(),
            required=True,
            label="Priority",
            description=(
                "Dataset names or folders, most wanted first: a group keeps "
                "a sample from the first one that has a member"
            ),
        )
        if not ctx.params.get("priority"):
            prop.invalid = True
            prop.error_message = "Give at least one dataset name or folder"


def _verify_input(inputs):
    choices = types.RadioGroup()
    choices.add_choice(
        "orb", label="Verify",
        description="Only pairs whose local features fit one transform (the same picture or scene)",
    )
    choices.add_choice(
        "none", label="Off", description="Every pair within the threshold (faster)",
    )
    inputs.enum(
        "verify", choices.values(), default="orb", label="Verification",
        description="Check each candidate pair before calling it a duplicate",
        view=choices,
    )


def _grouping_inputs(ctx, inputs, spec):
    """Advanced grouping choices: method, chain guard, invariance."""
    inputs.bool(
        "advanced",
        default=False,
        label="Grouping options",
        description="Grouping method, chain guard, flip/rotation invariance",
    )
    if not ctx.params.get("advanced", False):
        return
    methods = types.DropdownView()
    methods.add_choice(
        "near", label="Near matches",
        description="A kept sample and the near matches assigned to it (safest)",
    )
    methods.add_choice(
        "components", label="Chains",
        description="Whole chains of near matches, split by the guard",
    )
    methods.add_choice(
        "dbscan", label="DBSCAN",
        description="scikit-learn DBSCAN, eps from the threshold, split by the guard",
    )
    inputs.enum("grouping", methods.values(), default="near", label="Grouping", view=methods)
    guards = types.DropdownView()
    guards.add_choice(
        "kept", label="Near the kept sample",
        description="Every duplicate within the threshold of its kept sample",
    )
    guards.add_choice(
        "complete", label="Near every member",
        description="Every two members of a group within the threshold (strictest)",
    )
    inputs.enum("guard", guards.values(), default="kept", label="Chain guard", view=guards)
    if ctx.params.get("grouping") == "dbscan":
        inputs.int(
            "min_samples", default=1, min=1, label="DBSCAN min_samples",
            description="1 groups every near match (the seed's notebook)",
        )
    inv = types.DropdownView()
    inv.add_choice("none", label="None")
    inv.add_choice("flip", label="Mirrored copies")
    inv.add_choice("rotation", label="Rotated copies (90/180/270)")
    inv.add_choice("dihedral", label="Mirrored and rotated copies")
    what = "hashing" if spec.is_hash else "inference"
    inputs.enum(
        "invariance", inv.values(), default="none", label="Also match",
        description=f"Costs extra {what} and search per flipped/rotated version",
        view=inv,
    )


def _field_input(ctx, inputs, spec):
    """The encodings field; empty means the chosen encoder's own field.

    Returns:
        the field name, or None if the name typed is invalid
    """
    prop = inputs.str(
        "field",
        required=False,
        label="Encodings field",
        description=(
            "The sample field that holds (or will hold) the encodings; "
            f"leave empty for '{spec.default_field}'"
        ),
        view=types.TextFieldView(placeholder=spec.default_field),
    )
    name = ctx.params.get("field") or spec.default_field
    try:
        core.validate_field_name(name)
    except ValueError as e:
        prop.invalid = True
        prop.error_message = str(e)
        return None
    return name


def _encodings_notice(inputs, view, spec, field):
    """Says how many target samples already have encodings in ``field``."""
    n = len(view)
    done = 0
    if view._root_dataset.has_sample_field(field):
        done = len(view.exists(field))
    verb = "hashed" if spec.is_hash else "embedded"
    if done == n:
        label = f"All {n} sample(s) already {verb} in '{field}'"
    elif done == 0:
        label = f"No sample {verb} in '{field}' yet"
    else:
        label = f"{done} of {n} sample(s) already {verb} in '{field}'"
    inputs.view(
        "encodings_notice",
        types.Notice(
            label=label,
            description=(
                "Missing encodings, and those of files changed since, are "
                "computed first"
            ),
        ),
    )


#: what a hashing result shows: key -> label
_REPORT_LABELS = {
    "field": "Field",
    "num_computed": "Files read now",
    "num_reused": "Reused (file unchanged)",
    "num_failed": "Unreadable images",
}

#: what a duplicates result shows: summary key -> label
_SUMMARY_LABELS = {
    "num_groups": "Groups",
    "num_duplicates": "Duplicates (tagged)",
    "num_samples": "Samples searched",
    "num_failed": "Unreadable images (skipped)",
    "seconds": "Seconds",
}


def _rows(labels, values):
    return [(key, label, values.get(key)) for key, label in labels.items()]


def _output_schema(labels, title):
    outputs = types.Object()
    for key, label in labels.items():
        outputs.str(key, label=label)
    return types.Property(outputs, view=types.View(label=title))


def _report_values(report):
    return {key: getattr(report, key) for key in _REPORT_LABELS}


# ----------------------------------------------------------------- operators


class ComputeHashes(foo.Operator):
    """Computes perceptual hashes of the target's images as a sample field."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_hashes",
            label="Dedup: compute hashes",
            description=(
                "Compute perceptual hashes (DHash, PHash, AHash, WHash) of "
                "images as a sample field"
            ),
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
        :func:`fiftyone_dedup.engine.core.compute_hashes`).

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
            _executor_inputs(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Compute hashes"))

    def resolve_execution_options(self, ctx):
        return _execution_options(ctx)

    def execute(self, ctx):
        view = ctx.target_view()
        method = ctx.params.get("encoder", "dhash")
        field = ctx.params.get("field") or method
        overwrite = bool(ctx.params.get("overwrite", False))

        def work(progress):
            return core.compute_hashes(
                view, field=field, method=hashing.validate_method(method),
                overwrite=overwrite, progress=progress, **_executor_params(ctx.params),
            )

        if ctx.delegated:
            return _report_values(_run_delegated(ctx, work))
        return _shown_errors(ctx, "Computing hashes", self._execute_in_app(ctx, work))

    def _execute_in_app(self, ctx, work):
        report = yield from _run_in_app(ctx, work)
        yield ctx.ops.reload_dataset()
        note = appui.failures_note(report.failures)
        yield appui.result_dialog(
            ctx,
            "Hashes computed",
            _rows(_REPORT_LABELS, _report_values(report)),
            notes=[note] if note else [],
        )
        yield ctx.ops.notify(
            f"{report.num_computed} image(s) read, {report.num_reused} "
            f"reused, {report.num_failed} unreadable",
            variant="warning" if report.num_failed else "success",
        )

    def resolve_output(self, ctx):
        return _output_schema(_REPORT_LABELS, "Hashes computed")


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
        :func:`fiftyone_dedup.engine.core.compute_embeddings`).

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
            _executor_inputs(ctx, inputs)
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
                **_executor_params(params),
            )

        if ctx.delegated:
            _run_delegated(ctx, work)
            return None
        return _shown_errors(ctx, "Computing embeddings", self._execute_in_app(ctx, work))

    def _execute_in_app(self, ctx, work):
        report = yield from _run_in_app(ctx, work)
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
        priority=None,
        grouping="near",
        guard="kept",
        min_samples=1,
        invariance=None,
        tag=core.DEFAULT_TAG,
        model=None,
        verify="orb",
        delegate=False,
    ):
        """Finds duplicates through the operator (see
        :func:`fiftyone_dedup.engine.core.find_duplicates`).

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
                :func:`fiftyone_dedup.engine.core.find_duplicates`)
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
            "advanced": True,
            "grouping": grouping,
            "guard": guard,
            "min_samples": min_samples,
            "invariance": invariance or "none",
            "verify": verify or "none",
        }
        if priority:
            params["priority"] = list(priority)
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
            _verify_input(inputs)
            if not spec.is_hash:
                _model_input(ctx, inputs, view)
            _keep_input(ctx, inputs, view)
            _grouping_inputs(ctx, inputs, spec)
            _run_key_input(ctx, inputs, view)
            field = _field_input(ctx, inputs, spec)
            if field is not None:
                _encodings_notice(inputs, view, spec, field)
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
                description=(
                    "Set the App's view to the groups found: each kept "
                    "sample followed by its duplicates"
                ),
            )
            _executor_inputs(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Find duplicates"))

    def resolve_execution_options(self, ctx):
        return _execution_options(ctx)

    def execute(self, ctx):
        view = ctx.target_view()
        params = ctx.params
        spec = encoders.get_encoder(params.get("encoder", "cnn"))
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
                keep=params.get("keep") or "first",
                priority=params.get("priority"),
                tag=params.get("tag", core.DEFAULT_TAG),
                verify=params.get("verify") or "orb",
                progress=progress,
                **_grouping_params(params, spec),
                **_executor_params(params),
            )

        if ctx.delegated:
            summary = _run_delegated(ctx, work).summary
            return {key: summary.get(key) for key in _SUMMARY_LABELS}
        return _shown_errors(ctx, "Finding duplicates", self._execute_in_app(ctx, work, run_key))

    def _execute_in_app(self, ctx, work, run_key):
        results = yield from _run_in_app(ctx, work)
        summary = results.summary
        yield ctx.ops.reload_dataset()
        shown = ctx.params.get("open_view", True) and summary["num_groups"]
        if shown:
            yield from _show_groups(ctx, results.view(), run_key)
        buttons = []
        if summary["num_groups"] and not shown:
            buttons.append((
                "show_groups", "Show the groups", _uri("show_duplicates"),
                {"run_key": run_key, "role": "all"},
            ))
        yield from _found_messages(
            ctx, results, ctx.target_view(), f"Duplicates found (run '{run_key}')",
            _SUMMARY_LABELS, _result_notes(summary, shown), buttons=buttons,
        )

    def resolve_output(self, ctx):
        return _output_schema(_SUMMARY_LABELS, "Duplicates found")


def _found_messages(ctx, results, view, title, labels, notes, buttons=()):
    """The result dialog of a find (with the unreadable files of ``view``
    named after ``notes``) and its notification.

    Returns:
        the messages, which a generator operator must also yield
    """
    summary = results.summary
    failures = core.get_failures(view, results.config.field)
    note = appui.failures_note(failures, summary["num_failed"])
    return [
        appui.result_dialog(
            ctx, title, _rows(labels, summary),
            notes=list(notes) + ([note] if note else []), buttons=buttons,
        ),
        ctx.ops.notify(
            _summary_text(summary),
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


def _show_groups(ctx, view, run_key):
    """Sets the App's view to ``view`` and shows the run's group, role and
    score on the grid's tiles.

    Returns:
        the messages, which a generator operator must also yield
    """
    fields = [
        f for f in _run_fields(ctx.dataset, run_key) if not f.endswith("_kept_id")
    ]
    return [ctx.ops.set_view(view), ctx.ops.set_active_fields(fields)]


def _run_fields(dataset, run_key):
    return list(dataset.get_run_info(run_key).config.output_fields or [])


def _grouping_params(params, spec):
    out = {
        "grouping": params.get("grouping") or "near",
        "guard": params.get("guard") or "kept",
        "min_samples": params.get("min_samples") or 1,
    }
    invariance = params.get("invariance")
    if invariance not in (None, "none"):
        out["invariance"] = invariance
    return out


def _summary_text(summary):
    text = (
        f"{summary['num_duplicates']} duplicate(s) in {summary['num_groups']} "
        f"group(s) among {summary['num_samples']} sample(s)"
    )
    if summary.get("num_failed"):
        text += f"; {summary['num_failed']} image(s) could not be read"
    return text


class FindCrossDuplicates(foo.Operator):
    """Finds duplicates between this dataset (or view) and other datasets."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="find_cross_duplicates",
            label="Dedup: find duplicates across datasets",
            description=(
                "Which images of this target are already in other datasets "
                "(query vs reference), or duplicates within and across them"
            ),
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def __call__(
        self, sample_collection, datasets, mode="query", threshold=None,
        encoder="dhash", run_key=core.DEFAULT_RUN_KEY, write_reference=True,
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
        result = _execute_operator(self, sample_collection, params, delegate)
        if delegate:
            return result
        return core.load_run(sample_collection, run_key).summary

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = _target_inputs(ctx, inputs, "search")
        if view is not None:
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
                prop.invalid = True
                prop.error_message = "There are no other datasets"
            elif missing:
                prop.invalid = True
                prop.error_message = f"Unknown dataset(s): {', '.join(missing)}"
            modes = types.RadioGroup()
            modes.add_choice(
                "query", label="Against them (query vs reference)",
                description=(
                    "Only pairs between this target and the others: which of "
                    "these images are already there; the others always keep"
                ),
            )
            modes.add_choice(
                "union", label="Within and across all",
                description="Duplicates anywhere in this target and the others",
            )
            inputs.enum("mode", modes.values(), default="query", label="Search", view=modes)
            spec = _encoder_inputs(ctx, inputs)
            _threshold_input(ctx, inputs, spec)
            if not spec.is_hash:
                _model_input(ctx, inputs, view)
            _run_key_input(ctx, inputs, view)
            mode = ctx.params.get("mode", "query")
            if mode == "query":
                inputs.bool(
                    "write_reference",
                    default=True,
                    label="Record the run in the other datasets too",
                    description="Off leaves the reference datasets untouched",
                )
            if mode == "union" or ctx.params.get("write_reference", True):
                _others_replaced_notice(
                    ctx, inputs, [d for d in picked if d in others],
                    ctx.params.get("run_key") or core.DEFAULT_RUN_KEY,
                )
            inputs.bool(
                "open_view", default=True, label="Show the matches when done",
            )
            _executor_inputs(ctx, inputs)
        return types.Property(
            inputs, view=types.View(label="Find duplicates across datasets")
        )

    def resolve_execution_options(self, ctx):
        return _execution_options(ctx)

    def execute(self, ctx):
        view = ctx.target_view()
        params = ctx.params
        spec = encoders.get_encoder(params.get("encoder", "cnn"))
        run_key = params.get("run_key") or core.DEFAULT_RUN_KEY
        threshold = _threshold_param(params, spec)
        model = None if spec.is_hash else params.get("model") or models.DEFAULT_MODEL

        def work(progress):
            others = [fo.load_dataset(name) for name in params.get("datasets") or []]
            if params.get("mode", "query") == "union":
                return core.find_duplicates(
                    [view] + others, threshold=threshold, encoder=spec.name,
                    model=model, run_key=run_key, progress=progress,
                    **_executor_params(params),
                )
            return core.find_cross_duplicates(
                view, others, threshold=threshold, encoder=spec.name,
                model=model, run_key=run_key,
                write_reference=params.get("write_reference", True),
                progress=progress, **_executor_params(params),
            )

        if ctx.delegated:
            summary = _run_delegated(ctx, work).summary
            return {key: summary.get(key) for key in _CROSS_LABELS}
        return _shown_errors(
            ctx, "Finding duplicates across datasets",
            self._execute_in_app(ctx, work, view, run_key),
        )

    def _execute_in_app(self, ctx, work, view, run_key):
        results = yield from _run_in_app(ctx, work)
        summary = results.summary
        yield ctx.ops.reload_dataset()
        shown = ctx.params.get("open_view", True) and summary["num_cross"]
        if shown:
            from fiftyone_dedup.engine import review

            yield ctx.ops.set_view(review.build_view(view, run_key, "cross"))
        notes = [_cross_note(summary, shown)]
        per = summary.get("datasets") or {}
        if per:
            notes.append("\n".join(
                f"- `{name}`: {d['samples']} sample(s), {d['duplicates']} "
                f"duplicate(s), {d['cross']} of them in another dataset"
                for name, d in per.items()
            ))
        yield from _found_messages(
            ctx, results, view, f"Cross-dataset duplicates found (run '{run_key}')",
            _CROSS_LABELS, notes,
        )

    def resolve_output(self, ctx):
        return _output_schema(_CROSS_LABELS, "Cross-dataset duplicates found")


def _others_replaced_notice(ctx, inputs, names, run_key):
    """Warns before Execute which other datasets' runs ``run_key`` replaces
    (and flags a key held there by something else)."""
    replaced = []
    for name in names:
        other = fo.load_dataset(name)
        try:
            core.validate_run_key(run_key)
            core.check_run_key_free(other, run_key)
        except ValueError as e:
            prop = inputs.view(f"other_key_{len(replaced)}", types.Error(label=str(e)))
            prop.invalid = True
            prop.error_message = str(e)
            return
        if run_key in core.list_runs(other):
            replaced.append(f"dataset '{name}' ({_run_label(other, run_key)})")
    if replaced:
        inputs.view(
            "others_replaced",
            types.Warning(
                label=f"Replaces the run '{run_key}' in {len(replaced)} other dataset(s)",
                description=(
                    "Their fields and tags of that run are removed first: "
                    + "; ".join(replaced)
                    + ". Choose another run key, or turn off recording the "
                    "run in the other datasets, to keep them"
                ),
            ),
        )


#: what a cross-dataset run's result shows: key -> label
_CROSS_LABELS = {
    "num_cross": "Duplicates of a sample in another dataset",
    **{k: v for k, v in _SUMMARY_LABELS.items() if k != "seconds"},
}


def _cross_note(summary, shown):
    if not summary["num_cross"]:
        return "No duplicates across the datasets at this threshold."
    if shown:
        return (
            "The App now shows this target's samples that duplicate a sample "
            "in another dataset."
        )
    return "Review them with **Dedup: show duplicate groups** (cross-dataset hits)."


class ShowDistanceHistogram(foo.Operator):
    """Plots the match distances of a run near its threshold."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="show_distance_histogram",
            label="Dedup: plot match distances",
            description=(
                "A histogram of the distances of matched pairs near the "
                "threshold, to help choose a threshold"
            ),
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        _existing_run_input(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Plot match distances"))

    def execute(self, ctx):
        results = core.load_run(ctx.dataset, ctx.params["run_key"])
        if not results.histogram:
            raise ValueError(
                f"Run '{ctx.params['run_key']}' recorded no histogram; run it "
                "again with the histogram on"
            )
        return {"histogram": results.histogram, "summary": _summary_text(results.summary)}

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
        return foo.OperatorConfig(
            name="show_duplicates",
            label="Dedup: show duplicate groups",
            description=(
                "Show the groups of a duplicates run (also of a scheduled "
                "run that has finished)"
            ),
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
        inputs.bool(
            "grouped", default=False, label="One tile per group",
            description="The grid shows each group once; the sample view pages through its members",
        )
        return types.Property(inputs, view=types.View(label="Show duplicates"))

    def execute(self, ctx):
        role = ctx.params.get("role", "all")
        run_key = ctx.params["run_key"]
        view = core.duplicates_view(
            ctx.dataset, run_key, role=None if role == "all" else role,
            dynamic=bool(ctx.params.get("grouped", False)),
        )
        _show_groups(ctx, view, run_key)
        if ctx.params.get("grouped", False):
            ctx.ops.notify(f"Showing {len(view)} group(s) of run '{run_key}'")
            return {"num_groups": len(view)}
        ctx.ops.notify(f"Showing {len(view)} sample(s) of run '{run_key}'")
        return {"num_samples": len(view)}


def _run_label(dataset, key):
    """A run as the pickers show it: key, encoder, threshold, date, counts."""
    try:
        info = dataset.get_run_info(key)
        cfg = info.config
        summary = core.load_run(dataset, key).summary
    except Exception:  # noqa: BLE001 - an unreadable run is still offered
        return key
    when = info.timestamp.strftime("%Y-%m-%d %H:%M") if info.timestamp else "?"
    return (
        f"{key}: {cfg.encoder} at {cfg.threshold}, {when}, "
        f"{summary.get('num_groups', 0)} group(s), "
        f"{summary.get('num_duplicates', 0)} duplicate(s)"
    )


def _runs_newest_first(dataset):
    keys = core.list_runs(dataset)

    def when(key):
        ts = dataset.get_run_info(key).timestamp
        return ts.timestamp() if ts else 0.0

    return sorted(keys, key=when, reverse=True)


def _existing_run_input(ctx, inputs):
    run_keys = _runs_newest_first(ctx.dataset) if ctx.dataset is not None else []
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
        choices.add_choice(key, label=_run_label(ctx.dataset, key))
    inputs.enum(
        "run_key",
        choices.values(),
        default=run_keys[0],
        required=False,
        label="Run",
        description="Newest first",
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


# ----------------------------------------------------- move and restore


def _duplicates_dir_input(ctx, inputs, description, moving=True):
    """The duplicates folder field; returns its absolute path or None.

    ``moving`` (True) also refuses a folder inside the dataset's folder
    (restoring reads the folder earlier moves used)."""
    prop = inputs.str(
        "duplicates_dir", required=True, label="Duplicates folder", description=description,
    )
    value = ctx.params.get("duplicates_dir")
    if not value:
        return None
    try:
        path = actions.check_dir_arg(value)
        problem = _folder_problem(ctx.dataset if moving else None, value)
        if problem is None:
            return path
    except ValueError as e:
        problem = str(e)
    prop.invalid = True
    prop.error_message = problem
    inputs.view("folder_error", types.Error(label="Cannot use this folder", description=problem))
    return None


def _folder_problem(dataset, value):
    """Why the App cannot use ``value`` as a duplicates folder, or None:
    it must be absolute, outside the dataset's folder, and creatable and
    writable (checked without creating anything)."""
    path = os.path.expanduser(str(value).strip())
    if not os.path.isabs(path):
        return (
            f"Give an absolute folder path, not {value!r}: a relative one "
            f"would be taken from the App server's working directory ({os.getcwd()})"
        )
    path = os.path.normpath(path)
    # files that earlier moves put in the folder do not make it the dataset's
    paths = [
        p for p in (dataset.values("filepath") if dataset is not None else [])
        if not p.startswith(path + os.sep)
    ]
    if paths:
        home = os.path.commonpath([os.path.dirname(p) for p in paths])
        if home != os.sep and fileops.is_inside(path, home):
            return (
                f"The duplicates folder {path} is inside the dataset's folder "
                f"{home}; choose a folder outside it"
            )
    parent = path
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    # the messages of the move itself (actions._ensure_writable_dir)
    if not os.path.isdir(parent):
        return (
            f"Cannot write to the duplicates folder {path}: "
            f"{os.strerror(errno.ENOTDIR)} ({parent} is not a folder)"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        return (
            f"Cannot write to the duplicates folder {path}: "
            f"{os.strerror(errno.EACCES)} ({parent} is not writable)"
        )
    return None


def _confirm_input(ctx, inputs, label):
    prop = inputs.bool("confirm", default=False, required=True, label=label)
    if not ctx.params.get("confirm", False):
        prop.invalid = True
        prop.error_message = "Review the plan above and confirm"


def _plan_markdown(lines, limit=15):
    shown = lines if limit is None else lines[:limit]
    text = "\n".join(f"- `{line}`" for line in shown)
    if limit is not None and len(lines) > limit:
        text += f"\n- ... and {len(lines) - limit} more"
    return text


class MoveDuplicates(foo.Operator):
    """Moves a run's duplicate files into a folder, undoably, with their
    labels or without."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="move_duplicates",
            label="Dedup: move duplicates",
            description=(
                "Move the duplicates' files into a folder (with their "
                "annotations), with a manifest to undo the move"
            ),
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def __call__(
        self,
        sample_collection,
        duplicates_dir,
        run_key=core.DEFAULT_RUN_KEY,
        labels="keep",
        on_samples="keep",
        tag="moved",
        delegate=False,
    ):
        """Moves duplicates through the operator (see
        :func:`fiftyone_dedup.moves.actions.move_duplicates`).

        Args:
            sample_collection: a dataset or view
            duplicates_dir: the folder to move them into
            run_key ("dedup"): the duplicates run
            labels ("keep"): ``"keep"`` or ``"drop"``
            on_samples ("keep"): ``"keep"``, ``"delete"`` or ``"dataset"``
            tag ("moved"): the tag of moved samples
            delegate (False): schedule instead of running now

        Returns:
            the move's summary dict (see
            :func:`fiftyone_dedup.moves.actions.list_moves`), or the
            ``ExecutionResult`` of a scheduled run
        """
        params = dict(
            run_key=run_key, duplicates_dir=str(duplicates_dir), labels=labels,
            on_samples=on_samples, tag=tag, confirm=True,
        )
        result = _execute_operator(self, sample_collection, params, delegate)
        if delegate:
            return result
        name = sample_collection._root_dataset.name
        moves = [m for m in actions.list_moves(duplicates_dir) if m.get("dataset") == name]
        return moves[-1] if moves else None

    def resolve_input(self, ctx):
        inputs = types.Object()
        run_key = _existing_run_input(ctx, inputs)
        if run_key is not None:
            dup = _duplicates_dir_input(
                ctx, inputs,
                "A folder on the machine running FiftyOne. Each duplicate "
                "moves there under its dataset folder's name, at the same "
                "relative path; a manifest there lets you undo the move",
            )
            labels = types.RadioGroup()
            labels.add_choice("keep", label="Keep labels", description="The annotations travel with the images")
            labels.add_choice("drop", label="Drop labels", description="Images only; the moved samples lose their labels")
            inputs.enum("labels", labels.values(), default="keep", label="Labels", view=labels)
            samples = types.RadioGroup()
            samples.add_choice("keep", label="Keep and tag them", description="With their new filepath and a tag")
            samples.add_choice("delete", label="Delete them from the dataset")
            samples.add_choice("dataset", label="Move them to '<dataset>-duplicates'")
            inputs.enum("on_samples", samples.values(), default="keep", label="Moved samples", view=samples)
            inputs.str("tag", default="moved", required=False, label="Tag", description="The tag of moved samples")
            if dup is not None:
                self._preview(ctx, inputs, run_key, dup)
        return types.Property(inputs, view=types.View(label="Move duplicates"))

    def _preview(self, ctx, inputs, run_key, dup):
        try:
            plan = actions.move_duplicates(
                ctx.target_view(), dup, run_key=run_key,
                labels=ctx.params.get("labels", "keep"),
                on_samples=ctx.params.get("on_samples", "keep"),
                tag=ctx.params.get("tag", "moved") or None,
                dry_run=True,
            )
        except Exception as e:  # noqa: BLE001 - shown in the form
            prop = inputs.view("plan_error", types.Error(label="Cannot move", description=str(e)))
            prop.invalid = True
            prop.error_message = str(e)
            return
        if plan.num_planned == 0:
            prop = inputs.view(
                "nothing", types.Warning(label="Nothing to move", description=f"{plan.num_skipped} duplicate(s) cannot move")
            )
            prop.invalid = True
            prop.error_message = "Nothing to move"
            return
        inputs.view(
            "plan",
            types.Notice(label=f"{plan.num_planned} image(s) will move to {dup}; {plan.num_skipped} will not"),
        )
        # files and skips are cut at 15 each; every note is shown
        inputs.md(_plan_markdown(plan.format(limit=15).splitlines()[1:], limit=None), name="plan_lines")
        _confirm_input(ctx, inputs, "Move these files")

    def resolve_execution_options(self, ctx):
        return _execution_options(ctx)

    def execute(self, ctx):
        view = ctx.target_view()
        params = ctx.params

        def work(progress):
            return actions.move_duplicates(
                view,
                params["duplicates_dir"],
                run_key=params.get("run_key", core.DEFAULT_RUN_KEY),
                labels=params.get("labels", "keep"),
                on_samples=params.get("on_samples", "keep"),
                tag=params.get("tag", "moved") or None,
                progress=progress,
            )

        if ctx.delegated:
            return _move_values(_run_delegated(ctx, work))
        return _shown_errors(ctx, "Moving duplicates", self._execute_in_app(ctx, work))

    def _execute_in_app(self, ctx, work):
        result = yield from _run_in_app(ctx, work)
        yield ctx.ops.reload_dataset()
        buttons = []
        if result.num_moved:
            buttons.append((
                "undo", "Undo this move", _uri("restore_duplicates"),
                dict(duplicates_dir=result.duplicates_dir, move_id=result.move_id, confirm=True),
            ))
        yield appui.result_dialog(
            ctx, "Duplicates moved", _rows(_MOVE_LABELS, _move_values(result)),
            notes=_move_notes(result), buttons=buttons,
        )
        yield ctx.ops.notify(
            f"Moved {result.num_moved} image(s) to {result.duplicates_dir}"
            + (f"; {result.num_skipped} not moved" if result.num_skipped else ""),
            variant="warning" if result.num_skipped else "success",
        )

    def resolve_output(self, ctx):
        return _output_schema(_MOVE_LABELS, "Duplicates moved")


class RestoreDuplicates(foo.Operator):
    """Undoes moves of duplicates from their manifests."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="restore_duplicates",
            label="Dedup: restore moved duplicates",
            description="Put moved duplicates back: files, annotation files and samples",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            view_target=False,
        )

    def __call__(self, sample_collection, duplicates_dir, move_id=None, delegate=False):
        """Restores through the operator (see
        :func:`fiftyone_dedup.moves.actions.restore`).

        Args:
            sample_collection: the dataset whose moves to undo
            duplicates_dir: the duplicates folder
            move_id (None): one move; all of the dataset's by default
            delegate (False): schedule instead of running now

        Returns:
            the summaries of the dataset's moves in the folder, or the
            ``ExecutionResult`` of a scheduled run
        """
        params = dict(duplicates_dir=str(duplicates_dir), move_id=move_id or "all", confirm=True)
        result = _execute_operator(self, sample_collection, params, delegate)
        if delegate:
            return result
        name = sample_collection._root_dataset.name
        return [m for m in actions.list_moves(duplicates_dir) if m.get("dataset") == name]

    def resolve_input(self, ctx):
        inputs = types.Object()
        dup = _duplicates_dir_input(ctx, inputs, "The duplicates folder of the move", moving=False)
        if dup is not None:
            moves = [
                m for m in actions.list_moves(dup)
                if m.get("dataset") == ctx.dataset.name and m.get("state") in ("moving", "moved", "restoring")
            ]
            if not moves:
                prop = inputs.view(
                    "no_moves", types.Warning(label=f"No moves of this dataset to undo in {dup}")
                )
                prop.invalid = True
                prop.error_message = "Nothing to restore"
            else:
                choices = types.DropdownView()
                choices.add_choice("all", label=f"All {len(moves)} move(s), newest first")
                for m in reversed(moves):
                    choices.add_choice(
                        m["move_id"], label=f"{m['move_id']}: {m['num_moved']} file(s), {m['state']}"
                    )
                inputs.enum("move_id", choices.values(), default="all", label="Move", view=choices)
                move_id = ctx.params.get("move_id", "all")
                try:
                    plan = actions.restore(
                        dup, move_id=None if move_id == "all" else move_id,
                        dataset_name=ctx.dataset.name, dry_run=True,
                    )
                    inputs.view("plan", types.Notice(label=f"{plan.num_restored} file(s) will go back"))
                    for i, msg in enumerate(plan.messages):
                        inputs.view(f"note_{i}", types.Warning(label=msg))
                    _confirm_input(ctx, inputs, "Restore these files")
                except Exception as e:  # noqa: BLE001 - shown in the form
                    prop = inputs.view("plan_error", types.Error(label="Cannot restore", description=str(e)))
                    prop.invalid = True
                    prop.error_message = str(e)
        return types.Property(inputs, view=types.View(label="Restore moved duplicates"))

    def resolve_execution_options(self, ctx):
        return appui.execution_options(None)

    def execute(self, ctx):
        dup = ctx.params["duplicates_dir"]
        move_id = ctx.params.get("move_id", "all")
        name = ctx.dataset.name

        def work(progress):
            return actions.restore(
                dup, move_id=None if move_id == "all" else move_id, dataset_name=name, progress=progress,
            )

        if ctx.delegated:
            return _restore_values(_run_delegated(ctx, work))
        return _shown_errors(ctx, "Restoring duplicates", self._execute_in_app(ctx, work))

    def _execute_in_app(self, ctx, work):
        result = yield from _run_in_app(ctx, work)
        yield ctx.ops.reload_dataset()
        notes = [f"- {msg}" for msg in result.messages[:appui.MAX_LISTED_FAILURES]]
        yield appui.result_dialog(
            ctx, "Duplicates restored", _rows(_RESTORE_LABELS, _restore_values(result)),
            notes=["\n".join(notes)] if notes else [],
        )
        yield ctx.ops.notify(
            f"Restored {result.num_restored} image(s) from {result.duplicates_dir}"
            + (f" ({len(result.messages)} note(s): {result.messages[0]})" if result.messages else ""),
            variant="warning" if result.messages else "success",
        )

    def resolve_output(self, ctx):
        return _output_schema(_RESTORE_LABELS, "Duplicates restored")


#: what a move's result shows: key -> label
_MOVE_LABELS = {
    "num_moved": "Images moved",
    "num_skipped": "Duplicates not moved",
    "duplicates_dir": "Duplicates folder",
    "manifest": "Manifest (what undo reads)",
}

#: what a restore's result shows: key -> label
_RESTORE_LABELS = {
    "num_restored": "Images put back",
    "num_restored_labels": "Annotation files put back",
    "duplicates_dir": "Duplicates folder",
}


def _move_values(result):
    return {
        "num_moved": result.num_moved,
        "num_skipped": result.num_skipped,
        "duplicates_dir": result.duplicates_dir,
        "manifest": result.manifest,
        "move_id": result.move_id,
    }


def _restore_values(result):
    return {
        "num_restored": result.num_restored,
        "num_restored_labels": result.num_restored_labels,
        "duplicates_dir": result.duplicates_dir,
    }


def _move_notes(result):
    """Markdown: why duplicates stayed, and other notes."""
    notes = []
    n = appui.MAX_LISTED_FAILURES
    if result.skipped:
        lines = [f"**{len(result.skipped)} duplicate(s) not moved:**", ""]
        lines += [f"- `{s['path']}`: {s['reason']}" for s in result.skipped[:n]]
        if len(result.skipped) > n:
            lines.append(f"- ... and {len(result.skipped) - n} more (see the manifest)")
        notes.append("\n".join(lines))
    if result.messages:
        notes.append("\n".join(f"- {msg}" for msg in result.messages))
    return notes


OPERATORS = (
    ComputeHashes,
    ComputeEmbeddings,
    FindDuplicates,
    FindCrossDuplicates,
    ShowDuplicates,
    ShowDistanceHistogram,
    ClearDuplicates,
    MoveDuplicates,
    RestoreDuplicates,
)


def register(p):
    """Registers the plugin's operators and its review panel.

    Args:
        p: the ``PluginContext``
    """
    from fiftyone_dedup.app.review_panel import ReviewPanel

    for cls in OPERATORS:
        p.register(cls)
    p.register(ReviewPanel)
