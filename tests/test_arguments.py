"""The checks of a move's arguments: bad ones change nothing."""

import os

import pytest

from fiftyone_dedup.moves import move
from fiftyone_dedup.moves import restore
from fiftyone_dedup.moves import arguments
from fiftyone_dedup.options import ParameterError

from moving import load, plain_folder, names  # noqa: F401 - names: the fixture


def test_bad_arguments_change_nothing(tmp_path, names):
    root = str(tmp_path / "ds")
    plain_folder(root)
    ds = load(names, "badargs", [root], data_dir=False, annotations=False)
    file_path = tmp_path / "a_file"
    file_path.write_text("x")
    for kwargs, message in [
        (dict(labels="maybe"), "labels must be one of"),
        (dict(on_samples="archive"), "on_samples must be one of"),
        (dict(run_key="nope"), "No duplicates run 'nope'"),
        (dict(tag=""), "tag must be"),
        (dict(duplicates_dataset="x"), "only used with on_samples='dataset'"),
        (
            dict(on_samples="dataset", duplicates_dataset="badargs"),
            "must not be the dataset itself",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            move.move_duplicates(ds, str(tmp_path / "dups"), **kwargs)
    with pytest.raises(ValueError, match="not a folder"):
        move.move_duplicates(ds, str(file_path))
    with pytest.raises(ValueError, match="must be a folder path"):
        move.move_duplicates(ds, "")
    with pytest.raises(ValueError, match="not found"):
        restore.restore(str(tmp_path / "nowhere"))
    assert not os.path.exists(tmp_path / "dups")



def test_the_duplicates_folder_argument(tmp_path):
    assert arguments.check_dir_arg(str(tmp_path / "a" / ".." / "b")) == str(tmp_path / "b")
    (tmp_path / "file").write_text("x")
    for bad in ("", "  ", None, 3, str(tmp_path / "file")):
        with pytest.raises(ParameterError) as err:
            arguments.check_dir_arg(bad)
        assert err.value.param == "duplicates_dir"
        assert err.value.for_name("--duplicates_dir").startswith("--duplicates_dir")


def test_a_choice_names_its_parameter():
    assert arguments.check_choice("labels", "keep", ("keep", "drop")) == "keep"
    message = "labels must be one of .keep., .drop., got .x."
    with pytest.raises(ParameterError, match=message) as err:
        arguments.check_choice("labels", "x", ("keep", "drop"))
    assert err.value.param == "labels"
