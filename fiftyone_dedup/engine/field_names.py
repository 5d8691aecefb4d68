"""The names of the fields that encodings and duplicate runs write, and the
roles a run gives samples.

Plain names, no FiftyOne: every engine module (and the moves) builds field
names here, so a run's fields are spelled in one place.
"""

from fiftyone_dedup.options import DEFAULT_RUN_KEY, DEFAULT_TAG

__all__ = [
    "DEFAULT_RUN_KEY", "DEFAULT_TAG", "ROLE_KEPT", "ROLE_DUPLICATE",
    "OUTPUT_SUFFIXES", "SCORE_SUFFIXES", "CROSS_SUFFIXES", "VERIFY_SUFFIX",
    "output_field", "output_fields", "score_value", "error_field",
    "stamp_field", "variants_field",
]

#: the role of the sample a group keeps
ROLE_KEPT = "kept"

#: the role of the other members of a group
ROLE_DUPLICATE = "duplicate"

#: per-sample fields every run writes, as suffixes of ``<run_key>_``
OUTPUT_SUFFIXES = ("group", "role", "kept_id")

#: the score field's suffix, per metric: a distance for hashes, a
#: similarity for embeddings
SCORE_SUFFIXES = {"hamming": "distance", "cosine": "similarity"}

#: extra per-sample fields of runs over several collections: the kept
#: sample's dataset and filepath, and whether the sample's group spans
#: collections
CROSS_SUFFIXES = ("kept_dataset", "kept_filepath", "cross")

#: the field of a verified run holding each duplicate's verification score
#: (RANSAC inliers with its kept sample; 0 for textureless images matched by
#: their thumbnails)
VERIFY_SUFFIX = "inliers"


def output_field(run_key, suffix):
    """The name of a per-sample field written by a run.

    Args:
        run_key: the run key
        suffix: one of :data:`OUTPUT_SUFFIXES`, :data:`SCORE_SUFFIXES` or
            :data:`CROSS_SUFFIXES`

    Returns:
        ``"<run_key>_<suffix>"``
    """
    return f"{run_key}_{suffix}"


def output_fields(run_key, metric):
    """The group, role, kept-id and score fields of a run.

    Args:
        run_key: the run key
        metric: ``"hamming"`` or ``"cosine"``

    Returns:
        a list of four field names
    """
    suffixes = OUTPUT_SUFFIXES + (SCORE_SUFFIXES[metric],)
    return [output_field(run_key, s) for s in suffixes]


def score_value(score, metric):
    """A pair's score as the run's score field stores it.

    Args:
        score: the score
        metric: ``"hamming"`` (stored as an int) or ``"cosine"`` (a float)

    Returns:
        an int or a float
    """
    return float(score) if metric == "cosine" else int(round(score))


def error_field(field):
    """The field recording why a sample could not be encoded.

    Args:
        field: an encodings field

    Returns:
        ``"<field>_error"``
    """
    return f"{field}_error"


def stamp_field(field):
    """The field recording which file version and settings an encoding is of.

    Args:
        field: an encodings field

    Returns:
        ``"<field>_stamp"``
    """
    return f"{field}_stamp"


def variants_field(field):
    """The field holding the encodings of flipped/rotated versions.

    Args:
        field: an encodings field

    Returns:
        ``"<field>_variants"``
    """
    return f"{field}_variants"
