"""Review decisions on a run's groups: stored with the run, honoured by the
move (real database, real files)."""

import os

import pytest

import fiftyone as fo

import fiftyone_dedup as fod
from fiftyone_dedup.engine import decisions

import helpers


@pytest.fixture
def curated(tmp_path):
    """Three photos, each with a planted copy; duplicates found by DHash."""
    root = str(tmp_path / "imgs")
    pairs = []
    for i in range(3):
        img = helpers.photo(i).resize((128, 96))
        original = helpers.save(img, os.path.join(root, f"p{i}.png"))
        copy = helpers.save(helpers.jpeg(img), os.path.join(root, "copies", f"p{i}_copy.jpg"))
        pairs.append((original, copy))
    ds = fo.Dataset(f"decisions-{os.path.basename(str(tmp_path))}", overwrite=True)
    ds.persistent = True  # read back by a fresh process
    ds.add_samples([fo.Sample(filepath=p) for pair in pairs for p in pair])
    fod.find_duplicates(ds, encoder="dhash", threshold=10, num_workers=0)
    yield ds, pairs, str(tmp_path / "dups")
    ds.delete()


def _id(ds, path):
    return ds[path].id


def test_decisions_survive_a_reload_and_drive_the_move(curated):
    ds, pairs, dup = curated
    groups = fod.review_groups(ds)
    assert [len(g["duplicates"]) for g in groups] == [1, 1, 1]
    kept_paths = sorted(g["kept"]["filepath"] for g in groups)
    assert kept_paths == sorted(o for o, _ in pairs)

    results = fod.load_run(ds, "dedup")
    not_dup = _id(ds, pairs[0][1])
    results.decide(not_dup, "not_duplicate")
    swapped = _id(ds, pairs[1][1])
    results.decide(swapped, "keep")
    results.decide(_id(ds, pairs[2][1]), "accept")

    # a fresh process reads the decisions back with the run
    out = helpers.run_python(
        "import fiftyone as fo, fiftyone_dedup as fod, json\n"
        f"ds = fo.load_dataset({ds.name!r})\n"
        "print(json.dumps(fod.load_run(ds, 'dedup').decisions))\n"
    ).stdout
    assert f'"{not_dup}": "not_duplicate"' in out and f'"{swapped}": "keep"' in out

    ds.reload()
    tagged = sorted(ds.match_tags("duplicate").values("filepath"))
    assert tagged == sorted([pairs[1][0], pairs[2][1]])
    assert fod.load_run(ds).summary["num_duplicates"] == 2

    result = fod.move_duplicates(ds, dup)
    assert result.num_moved == 2
    assert os.path.isfile(pairs[0][1])  # not a duplicate: stays
    assert not os.path.exists(pairs[1][0])  # the former kept sample moved
    assert os.path.isfile(pairs[1][1])  # the new kept sample stays
    assert not os.path.exists(pairs[2][1])
    assert os.path.isfile(pairs[0][0]) and os.path.isfile(pairs[2][0])


def test_accept_undoes_not_duplicate_and_groups_can_be_rejected(curated):
    ds, pairs, _ = curated
    sid = _id(ds, pairs[0][1])
    fod.decide(ds, sid, "not_duplicate")
    assert "duplicate" not in ds[pairs[0][1]].tags
    fod.decide(ds, sid, "accept")
    assert "duplicate" in ds[pairs[0][1]].tags
    assert ds[pairs[0][1]]["dedup_role"] == "duplicate"

    fod.decide_all(ds, "reject")
    assert len(ds.match_tags("duplicate")) == 0
    roles = {g["kept"]["role"] for g in fod.review_groups(ds)}
    assert roles == {"kept"}
    assert {d["role"] for g in fod.review_groups(ds) for d in g["duplicates"]} == {"not_duplicate"}
    fod.decide_all(ds, "accept")
    assert len(ds.match_tags("duplicate")) == 3


def test_bad_decisions_are_refused_with_a_message(curated):
    ds, pairs, _ = curated
    kept = _id(ds, pairs[0][0])
    with pytest.raises(ValueError, match="is the kept sample of group"):
        fod.decide(ds, kept, "not_duplicate")
    with pytest.raises(ValueError, match="decision must be one of"):
        fod.decide(ds, kept, "maybe")
    with pytest.raises(ValueError, match="not in a group"):
        fod.decide(ds, "0" * 24, "accept")
    assert decisions.DECISIONS == ("accept", "not_duplicate", "keep")


def test_a_stricter_threshold_regroups_from_the_recorded_scores(curated):
    ds, pairs, _ = curated
    groups = fod.review_groups(ds)
    scores = sorted(d["score"] for g in groups for d in g["duplicates"])
    strictest = scores[0]
    preview = decisions.threshold_preview(ds, strictest)
    expected = sum(1 for s in scores if s <= strictest)
    assert preview["num_duplicates"] == expected
    assert preview["num_dropped"] == len(scores) - expected
    # nothing changed by a preview
    assert len(ds.match_tags("duplicate")) == len(scores)
    with pytest.raises(ValueError, match="recorded matches up to 10"):
        decisions.threshold_preview(ds, 12)

    decisions.apply_threshold(ds, strictest)
    ds.reload()
    assert len(ds.match_tags("duplicate")) == expected
    assert fod.load_run(ds).summary["review_threshold"] == strictest
