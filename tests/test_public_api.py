"""The public API (``import fiftyone_dedup as fod``) reaches each name in the
module of its concept, lazily, without importing FiftyOne up front."""

import importlib
import subprocess
import sys

import fiftyone_dedup


def test_every_public_name_is_its_home_modules():
    for name, module in fiftyone_dedup._EXPORTS.items():
        home = importlib.import_module(module)
        assert getattr(fiftyone_dedup, name) is getattr(home, name), name
    assert sorted(fiftyone_dedup.__all__) == sorted(fiftyone_dedup._EXPORTS)


def test_moves_are_reached_in_their_modules():
    from fiftyone_dedup.moves import move, restore, results

    assert fiftyone_dedup.move_duplicates is move.move_duplicates
    assert fiftyone_dedup.restore is restore.restore
    assert fiftyone_dedup.resume_moves is restore.resume_moves
    assert fiftyone_dedup.list_moves is restore.list_moves
    assert fiftyone_dedup.MoveResult is results.MoveResult
    assert fiftyone_dedup.RestoreResult is results.RestoreResult


def test_importing_the_package_imports_no_fiftyone():
    code = (
        "import sys, fiftyone_dedup\n"
        "print(any(m == 'fiftyone' or m.startswith('fiftyone.') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
