"""The checks of the arguments of a move or restore, made before
anything changes; errors name the parameter (see
:class:`fiftyone_dedup.options.ParameterError`)."""

import os

import fiftyone as fo
import fiftyone.core.media as fom

from fiftyone_dedup.engine import samples as sample_checks
from fiftyone_dedup.moves.model import LABELS, ON_SAMPLES
from fiftyone_dedup.options import ParameterError


def check_dir_arg(duplicates_dir):
    """Checks a duplicates folder argument.

    Args:
        duplicates_dir: a folder path (need not exist)

    Returns:
        the normalised absolute path

    Raises:
        fiftyone_dedup.options.ParameterError: if it is not a path, or
            names something that is not a folder
    """
    if not isinstance(duplicates_dir, (str, os.PathLike)) or not str(duplicates_dir).strip():
        raise ParameterError(
            "duplicates_dir", f"duplicates_dir must be a folder path, got {duplicates_dir!r}"
        )
    path = os.path.abspath(os.path.expanduser(os.fspath(duplicates_dir)))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ParameterError(
            "duplicates_dir", f"duplicates_dir exists and is not a folder: {path}"
        )
    return os.path.normpath(path)


def check_choice(name, value, choices):
    """Checks that parameter ``name`` is one of ``choices``; returns it.

    Raises:
        fiftyone_dedup.options.ParameterError: if it is not
    """
    if value not in choices:
        raise ParameterError(
            name,
            f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}",
        )
    return value


def check_move_args(samples, duplicates_dir, run_key, labels, on_samples, tag, duplicates_dataset):
    """Checks the arguments of
    :func:`fiftyone_dedup.moves.move.move_duplicates`.

    Returns:
        ``(duplicates_dir, run_key, duplicates_dataset)``, checked (the
        duplicates dataset defaults to ``"<dataset name>-duplicates"``
        with ``on_samples="dataset"``)

    Raises:
        ValueError: for a bad argument (a
            :class:`fiftyone_dedup.options.ParameterError` naming it where
            one is to blame)
    """
    sample_checks.check_collection(samples)
    if samples.media_type == fom.GROUP:
        raise ValueError(
            "Grouped datasets cannot be moved; select a slice with select_group_slices() first"
        )
    dup = check_dir_arg(duplicates_dir)
    run_key = sample_checks.validate_run_key(run_key)
    check_choice("labels", labels, LABELS)
    check_choice("on_samples", on_samples, ON_SAMPLES)
    if tag is not None and (not isinstance(tag, str) or not tag.strip()):
        raise ParameterError("tag", f"tag must be a non-empty string or None, got {tag!r}")
    dataset = samples._root_dataset
    if on_samples == "dataset":
        duplicates_dataset = duplicates_dataset or f"{dataset.name}-duplicates"
        if not isinstance(duplicates_dataset, str) or not duplicates_dataset.strip():
            raise ParameterError(
                "duplicates_dataset",
                f"duplicates_dataset must be a dataset name, got {duplicates_dataset!r}",
            )
        if duplicates_dataset == dataset.name:
            raise ParameterError(
                "duplicates_dataset", "duplicates_dataset must not be the dataset itself"
            )
        if fo.dataset_exists(duplicates_dataset):
            other = fo.load_dataset(duplicates_dataset)
            if other.media_type not in (None, fom.IMAGE):
                raise ParameterError(
                    "duplicates_dataset",
                    f"Dataset '{duplicates_dataset}' does not hold images; choose another "
                    "duplicates_dataset",
                )
    elif duplicates_dataset is not None:
        raise ParameterError(
            "duplicates_dataset", "duplicates_dataset is only used with on_samples='dataset'"
        )
    return dup, run_key, duplicates_dataset
