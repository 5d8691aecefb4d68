"""Moving duplicate files out of a dataset and back: plans, the manifest
journal that makes every move resumable and undoable, annotation files, and
locks.
"""
