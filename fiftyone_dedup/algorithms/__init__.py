"""The pure layer: decoding, hashing, embedding models, search, grouping and
keep policies over plain files and arrays.

Nothing here imports FiftyOne (``tests/test_layers.py`` checks it), so these
modules run in worker processes and on Ray workers without a database.
"""
