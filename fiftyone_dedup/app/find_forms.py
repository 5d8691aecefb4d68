"""The fields of the find forms (keep policy, verification, grouping, the
encodings already there, other datasets' runs replaced) and the engine's
arguments they set: :func:`find_kwargs` builds them from the form, and
:func:`check_find_options` shows
:meth:`fiftyone_dedup.options.FindOptions.validated`'s errors on the form.
"""

import logging

import fiftyone as fo
import fiftyone.operators.types as types

from fiftyone_dedup import options
from fiftyone_dedup.engine import keep as keep_policies
from fiftyone_dedup.app import forms
from fiftyone_dedup.engine import field_names
from fiftyone_dedup.engine import runs
from fiftyone_dedup.engine import samples

logger = logging.getLogger(__name__)

_KEEP_LABELS = {
    "first": "First in order",
    "largest_resolution": "Largest resolution",
    "largest_file": "Largest file",
    "most_labels": "Most labels",
    "oldest": "Oldest file",
    "newest": "Newest file",
    "priority": "By dataset / folder priority",
}


def find_kwargs(params, spec, view, mode="within"):
    """The arguments of :func:`fiftyone_dedup.engine.find.find_duplicates`
    (or ``find_cross_duplicates``) that the form sets.

    Args:
        params: the form's values
        spec: the chosen encoder's spec
        view: the target
        mode ("within"): ``"within"`` (the find form), ``"union"`` or
            ``"query"`` (the cross-dataset form)

    Returns:
        a dict of keyword arguments
    """
    model, field = forms.model_and_field(params, spec, view)
    kwargs = dict(
        threshold=forms.threshold_param(params, spec),
        encoder=spec.name,
        model=model,
        run_key=params.get("run_key") or field_names.DEFAULT_RUN_KEY,
        **forms.executor_params(params),
    )
    if mode == "query":
        kwargs["write_reference"] = params.get("write_reference", True)
    if mode != "within":
        return kwargs
    kwargs.update(
        field=field,
        run_key=params.get("run_key", field_names.DEFAULT_RUN_KEY),
        keep=params.get("keep") or "first",
        priority=params.get("priority"),
        tag=params.get("tag", field_names.DEFAULT_TAG),
        verify=params.get("verify") or "orb",
        grouping=params.get("grouping") or "near",
        guard=params.get("guard") or "kept",
        min_samples=params.get("min_samples") or 1,
    )
    invariance = params.get("invariance")
    if invariance not in (None, "none"):
        kwargs["invariance"] = invariance
    return kwargs


def validate_find(kwargs, mode="within"):
    """Checks a find's arguments (see :func:`find_kwargs`).

    Raises:
        fiftyone_dedup.options.ParameterError: naming the first bad one
    """
    options.FindOptions.from_kwargs(**kwargs).validated(mode)


def check_find_options(inputs, params, spec, view, mode="within"):
    """Shows the bad options of a find form on their fields.

    Returns:
        True if every option is valid
    """
    keys = {"threshold": forms.threshold_key(spec)}
    if params.get("keep") == "priority":
        keys["keep"] = "priority"  # what is missing is the priority list
    return forms.check_options(
        inputs, lambda **kw: validate_find(kw, mode), find_kwargs(params, spec, view, mode), keys,
    )


def _run_output_fields(dataset):
    """The fields this plugin's runs wrote (not offered as keep criteria)."""
    own = set()
    for key in runs.list_runs(dataset):
        own.update(forms.run_fields(dataset, key))
    return own


def keep_input(ctx, inputs, view):
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
            forms.mark_invalid(prop, "Give at least one dataset name or folder")


def verify_input(inputs):
    """Whether candidate pairs are verified by local features."""
    view = forms.choices(
        types.RadioGroup(),
        (
            "orb", "Verify",
            "Only pairs whose local features fit one transform (the same picture or scene)",
        ),
        ("none", "Off", "Every pair within the threshold (faster)"),
    )
    inputs.enum(
        "verify", view.values(), default="orb", label="Verification",
        description="Check each candidate pair before calling it a duplicate",
        view=view,
    )


def grouping_inputs(ctx, inputs, spec):
    """Advanced grouping choices: method, chain guard, invariance."""
    inputs.bool(
        "advanced",
        default=False,
        label="Grouping options",
        description="Grouping method, chain guard, flip/rotation invariance",
    )
    if not ctx.params.get("advanced", False):
        return
    methods = forms.choices(
        types.DropdownView(),
        ("near", "Near matches", "A kept sample and the near matches assigned to it (safest)"),
        ("components", "Chains", "Whole chains of near matches, split by the guard"),
        ("dbscan", "DBSCAN", "scikit-learn DBSCAN, eps from the threshold, split by the guard"),
    )
    inputs.enum("grouping", methods.values(), default="near", label="Grouping", view=methods)
    guards = forms.choices(
        types.DropdownView(),
        ("kept", "Near the kept sample", "Every duplicate within the threshold of its kept sample"),
        (
            "complete", "Near every member",
            "Every two members of a group within the threshold (strictest)",
        ),
    )
    inputs.enum("guard", guards.values(), default="kept", label="Chain guard", view=guards)
    if ctx.params.get("grouping") == "dbscan":
        inputs.int(
            "min_samples", default=1, min=1, label="DBSCAN min_samples",
            description="1 groups every near match (the seed's notebook)",
        )
    inv = forms.choices(
        types.DropdownView(),
        ("none", "None"),
        ("flip", "Mirrored copies"),
        ("rotation", "Rotated copies (90/180/270)"),
        ("dihedral", "Mirrored and rotated copies"),
    )
    inputs.enum(
        "invariance", inv.values(), default="none", label="Also match",
        description=f"Costs extra {spec.work} and search per flipped/rotated version",
        view=inv,
    )


def encodings_notice(inputs, view, spec, field):
    """Says how many target samples already have encodings in ``field``."""
    n = len(view)
    done = 0
    if view._root_dataset.has_sample_field(field):
        done = len(view.exists(field))
    if done == n:
        label = f"All {n} sample(s) already {spec.verb} in '{field}'"
    elif done == 0:
        label = f"No sample {spec.verb} in '{field}' yet"
    else:
        label = f"{done} of {n} sample(s) already {spec.verb} in '{field}'"
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


def others_replaced_notice(inputs, names, run_key):
    """Warns before Execute which other datasets' runs ``run_key`` replaces
    (and flags a key held there by something else)."""
    replaced = []
    for name in names:
        other = fo.load_dataset(name)
        try:
            options.validate_run_key(run_key)
            samples.check_run_key_free(other, run_key)
        except ValueError as e:
            prop = inputs.view(f"other_key_{len(replaced)}", types.Error(label=str(e)))
            forms.mark_invalid(prop, str(e))
            return
        if run_key in runs.list_runs(other):
            replaced.append(f"dataset '{name}' ({forms.run_label(other, run_key)})")
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
