"""Form fields the operators share: the target, the encoder and its
threshold, the model, the run key, the encodings field, the executor, an
existing run; and :func:`check_options`, which shows the options' own
validation (:mod:`fiftyone_dedup.options`) on the fields it names.

Each ``*_input(ctx, inputs, ...)`` adds its field to the form's
``types.Object`` and marks a bad value with ``prop.invalid``.
"""

import logging

import fiftyone as fo
import fiftyone.operators.types as types
from fiftyone.operators.constants import ViewTarget

from fiftyone_dedup import options
from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.algorithms import models
from fiftyone_dedup.app import appui
from fiftyone_dedup.engine import field_names
from fiftyone_dedup.engine import runs
from fiftyone_dedup.engine import samples

logger = logging.getLogger(__name__)


def sentence(text):
    """``text`` with its first letter capitalised."""
    return text[:1].upper() + text[1:]


def mark_invalid(prop, message):
    """Flags a form field: the App shows ``message`` on it and refuses to run.

    Args:
        prop: the field's ``types.Property``
        message: what is wrong
    """
    prop.invalid = True
    prop.error_message = message


def choices(view, *items):
    """Adds choices to a choice view (``types.RadioGroup``, ``DropdownView``).

    Args:
        view: the view
        *items: ``(value, label)`` or ``(value, label, description)`` tuples

    Returns:
        the view
    """
    for value, label, *description in items:
        view.add_choice(value, label=label, description=description[0] if description else None)
    return view


def check_options(inputs, validate, kwargs, keys=None):
    """Shows each bad option on the form field that sets it.

    ``validate(**kwargs)`` builds and checks the options; each
    :class:`fiftyone_dedup.options.ParameterError` is shown on the field of
    its parameter, which is then left at its default to check the rest. A
    field the form already flagged keeps its message, and an enum whose value
    is not a choice is left to FiftyOne's own check ("Invalid enum value").

    Args:
        inputs: the form's ``types.Object``
        validate: a function of the options' keyword arguments that raises
            ``ParameterError``
        kwargs: the options' keyword arguments, from the form's values
        keys (None): ``parameter -> form key`` where they differ

    Returns:
        True if every option is valid
    """
    kwargs = dict(kwargs)
    keys = keys or {}
    valid = True
    for _ in range(len(kwargs) + 1):
        try:
            validate(**kwargs)
            return valid
        except options.ParameterError as e:
            valid = False
            message = sentence(e.message)
            prop = inputs.properties.get(keys.get(e.param, e.param))
            if prop is None:
                mark_invalid(inputs.view(f"{e.param}_error", types.Error(label=message)), message)
            elif not prop.invalid and not _enum_refuses(prop, kwargs.get(e.param)):
                mark_invalid(prop, message)
            if e.param not in kwargs:
                return valid  # nothing to leave out: the same error would repeat
            del kwargs[e.param]
    return valid


def _enum_refuses(prop, value):
    return isinstance(prop.type, types.Enum) and value not in prop.type.values


def target_inputs(ctx, inputs, what):
    """Notes how many samples the target holds; flags an empty target.

    Args:
        ctx: the execution context
        inputs: the form's ``types.Object``
        what: the verb stem of the run, such as ``"hash"`` or ``"search"``

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
        mark_invalid(prop, "The target has no samples")
        return None
    inputs.view(
        "target_size",
        types.Notice(label=f"{n} sample(s) will be {what}ed"),
    )
    appui.large_target_notice(inputs, n)
    return view


def executor_inputs(ctx, inputs):
    """Where the run's heavy steps run: here, or a Ray cluster (for
    scheduled runs on large datasets)."""
    view = choices(
        types.RadioGroup(),
        ("local", "This machine"),
        ("ray", "Ray cluster (pip install fiftyone-dedup[ray])"),
    )
    inputs.enum(
        "executor", view.values(), default="local", label="Run on", view=view,
        description="A Ray cluster gives the same results; its workers must "
        "see the images and this database",
    )
    if ctx.params.get("executor") == "ray":
        inputs.str(
            "ray_address", required=False, label="Ray address",
            description="Default: RAY_ADDRESS, else a local Ray for the run",
        )


def executor_params(params):
    """The engine's ``executor``/``ray_address`` arguments from the form."""
    if params.get("executor", "local") != "ray":
        return {}
    return {"executor": "ray", "ray_address": params.get("ray_address") or None}


#: how each encoder is described in the encoder picker (others: a hash)
_ENCODER_TEXT = {
    "dhash": "Difference hash (imagededup's DHash): the usual choice",
    "cnn": "CNN embeddings: also finds heavier edits and near-identical shots",
}


def encoder_inputs(ctx, inputs, hashes_only=False):
    """The encoder picker.

    Args:
        ctx: the execution context
        inputs: the form's ``types.Object``
        hashes_only (False): offer the hash encoders only

    Returns:
        the chosen :class:`~fiftyone_dedup.algorithms.encoders.EncoderSpec`
        (DHash if the value is unknown: the picker flags it)
    """
    choices = types.DropdownView()
    for spec in encoders.ENCODERS.values():
        if hashes_only and spec.uses_model:
            continue
        choices.add_choice(
            spec.name,
            label=spec.label,
            description=_ENCODER_TEXT.get(
                spec.name, f"{spec.label} perceptual hash (imagededup's algorithm)"
            ),
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


#: the threshold field per metric: its form key and how it is typed. One key
#: per metric, so that switching encoders in the App shows the new encoder's
#: default instead of keeping the other's value
_THRESHOLD_FIELDS = {
    "hamming": ("threshold", lambda inputs, key, kw: inputs.int(key, **kw)),
    "cosine": ("similarity", lambda inputs, key, kw: inputs.float(key, min=-1.0, max=1.0, **kw)),
}


def threshold_key(spec):
    """The form key of the threshold of the encoder ``spec``."""
    return _THRESHOLD_FIELDS[spec.metric][0]


def threshold_param(params, spec):
    """The threshold in the params, for the encoder ``spec``."""
    value = params.get(threshold_key(spec))
    if value is None:
        value = params.get("threshold")  # what SDK callers may pass
    return value


def threshold_input(inputs, spec):
    """The threshold field of the encoder ``spec``, in its unit (flagged by
    :func:`check_options` with the ``threshold`` parameter)."""
    key, add = _THRESHOLD_FIELDS[spec.metric]
    add(inputs, key, dict(
        default=spec.default_threshold,
        required=False,
        label=spec.threshold_label,
        description=sentence(spec.threshold_help),
    ))


def model_input(ctx, inputs, view):
    """The embedding model: a name, or an embeddings field of the dataset.

    Returns:
        the chosen name
    """
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
        mark_invalid(prop, str(e))
        return name
    problem = models.missing_weights(name)
    if problem:
        inputs.view("model_offline", types.Warning(label="Needs a download", description=problem))
    return name


def model_and_field(params, spec, view):
    """The engine's ``model`` and ``field`` from the form: an embeddings
    field chosen as the model is used as is.

    Returns:
        ``(model, field)``
    """
    field = params.get("field") or spec.default_field
    if not spec.uses_model:
        return None, field
    model = params.get("model") or models.DEFAULT_MODEL
    if model in view._root_dataset.get_field_schema():
        field = None  # an embeddings field, used as is
    return model, field


def run_key_input(ctx, inputs, view, default=field_names.DEFAULT_RUN_KEY):
    """The run key; flags one held by something else, notes a replaced run."""
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
        options.validate_run_key(run_key)
        samples.check_run_key_free(view, run_key)
    except ValueError as e:
        mark_invalid(prop, str(e))
        return
    if run_key in runs.list_runs(view):
        inputs.view(
            "replace_notice",
            types.Notice(
                label=f"Run '{run_key}' exists and will be replaced "
                "(its fields and tags are removed first)"
            ),
        )


def field_input(ctx, inputs, spec):
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
        options.validate_field_name(name)
    except ValueError as e:
        mark_invalid(prop, str(e))
        return None
    return name


def run_fields(dataset, run_key):
    """The fields a run wrote."""
    return list(dataset.get_run_info(run_key).config.output_fields or [])


def run_label(dataset, key):
    """A run as the pickers show it: key, encoder, threshold, date, counts."""
    try:
        info = dataset.get_run_info(key)
        cfg = info.config
        summary = runs.load_run(dataset, key).summary
    except Exception:  # noqa: BLE001 - an unreadable run is still offered
        return key
    when = info.timestamp.strftime("%Y-%m-%d %H:%M") if info.timestamp else "?"
    return (
        f"{key}: {cfg.encoder} at {cfg.threshold}, {when}, "
        f"{summary.get('num_groups', 0)} group(s), "
        f"{summary.get('num_duplicates', 0)} duplicate(s)"
    )


def runs_newest_first(dataset):
    """The dataset's duplicates runs, newest first."""
    keys = runs.list_runs(dataset)

    def when(key):
        ts = dataset.get_run_info(key).timestamp
        return ts.timestamp() if ts else 0.0

    return sorted(keys, key=when, reverse=True)


def existing_run_input(ctx, inputs):
    """A picker of the dataset's runs, newest first; flags a dataset with none.

    Returns:
        the chosen run key, or None if there are no runs
    """
    run_keys = runs_newest_first(ctx.dataset) if ctx.dataset is not None else []
    if not run_keys:
        prop = inputs.view(
            "no_runs",
            types.Warning(
                label="No duplicates runs",
                description="Run 'Dedup: find duplicates' first.",
            ),
        )
        mark_invalid(prop, "This dataset has no duplicates runs")
        return None
    choices = types.DropdownView()
    for key in run_keys:
        choices.add_choice(key, label=run_label(ctx.dataset, key))
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
