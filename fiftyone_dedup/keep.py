"""Keep policies: which member of a duplicate group stays.

A policy turns the samples taking part in a run into a keep-priority order
(most wanted first); the grouping keeps the first member of each group in
that order. Ties are always broken by the collection's own order, so the same
inputs give the same choice.
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)

#: the built-in keep policies
POLICIES = ("first",)


def validate_keep(keep):
    """Checks a keep policy.

    Args:
        keep: a policy name

    Returns:
        the policy

    Raises:
        ValueError: naming the known policies
    """
    if keep not in POLICIES:
        raise ValueError(
            f"Unknown keep policy {keep!r}; expected one of {', '.join(POLICIES)}"
        )
    return keep


def keep_order(samples, ids, keep="first"):
    """The keep-priority order of some samples.

    Args:
        samples: the ``SampleCollection`` the ids belong to
        ids: the sample ids taking part, in the collection's order
        keep ("first"): the policy

    Returns:
        an int array: positions into ``ids``, most wanted first
    """
    validate_keep(keep)
    return np.arange(len(ids))
