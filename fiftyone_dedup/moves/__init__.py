"""Moving duplicate files out of a dataset and back.

- ``arguments``: the checks of a move's arguments; ``plan``: what moves
  where and why a file stays; ``move``: the move, in the order of its
  journal; ``restore``: restore, resume and list moves; ``results``: what
  they did.
- ``transfer``: one file moved out or brought back (one resumable transfer
  both ways); ``annotation_files``: a move's annotation files split, written
  and put back; ``database``: the moved samples; ``trust``: what a move may
  touch, as its dataset recorded it.
- ``paths``: the places in a duplicates folder; ``model``: a move as its
  manifest records it; ``journal``: the manifest's records; ``manifest``:
  the manifest files; ``annotations``: annotation formats; ``fileops``:
  safe file operations; ``locks``: locks.
- ``actions``: the public names by their first module path.
"""
