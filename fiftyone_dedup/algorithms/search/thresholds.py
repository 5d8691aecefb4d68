"""Threshold checks of the radius searches: bits for hashes, a cosine
similarity for embeddings."""

import numpy as np

def validate_hamming_threshold(threshold, bits=64):
    """Checks a Hamming threshold.

    Args:
        threshold: the maximum Hamming distance, in bits
        bits (64): the hash length

    Returns:
        the threshold as an int

    Raises:
        ValueError: if it is not an integer in ``[0, bits]``
    """
    if not _is_number(threshold) or not _is_integral(threshold):
        raise ValueError(
            f"threshold must be a whole number of bits between 0 and {bits} "
            f"for hashes (maximum Hamming distance; ~10 is typical), got "
            f"{threshold!r}"
        )
    threshold = int(threshold)
    if not 0 <= threshold <= bits:
        raise ValueError(
            f"threshold must be between 0 and {bits} bits for hashes "
            f"(maximum Hamming distance; ~10 is typical), got {threshold}"
        )
    return threshold


def validate_cosine_threshold(threshold):
    """Checks a cosine similarity threshold.

    Args:
        threshold: the minimum cosine similarity

    Returns:
        the threshold as a float

    Raises:
        ValueError: if it is not a number in ``[-1, 1]``
    """
    value = float(threshold) if _is_number(threshold) else None
    if value is None or not np.isfinite(value) or not -1.0 <= value <= 1.0:
        raise ValueError(
            "threshold must be a minimum cosine similarity between -1 and 1 "
            f"for embeddings (0.82-0.9 is typical), got {threshold!r}"
        )
    return value


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_)
    )


def _is_integral(x):
    try:
        return float(x) == int(x)
    except (TypeError, ValueError, OverflowError):
        return False

