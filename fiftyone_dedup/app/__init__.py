"""The FiftyOne App front end: operators (by family, registered by
:mod:`fiftyone_dedup.app.operators`), their forms and dialogs, and the
review panel, each a thin layer over :mod:`fiftyone_dedup.engine` and
:mod:`fiftyone_dedup.moves`.
"""
