"""The errors of loading folders as datasets, shared by
:mod:`fiftyone_dedup.engine.folders` and :mod:`fiftyone_dedup.engine.layouts`.
"""

from fiftyone_dedup.options import ParameterError


class FolderError(ValueError):
    """A folder cannot be used; the message says what was expected."""


class FolderParameterError(ParameterError, FolderError):
    """A folder cannot be used as one parameter says; names the parameter
    (see :class:`fiftyone_dedup.options.ParameterError`)."""
