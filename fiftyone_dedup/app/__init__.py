"""The FiftyOne App front end: operators, forms and the review panel, each a
thin layer over :mod:`fiftyone_dedup.engine` and :mod:`fiftyone_dedup.moves`.
"""
