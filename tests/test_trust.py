"""What a restore trusts: the folders the dataset vouches for, and only
the files a move planned (hand-edited manifests)."""

import os

import pytest

from fiftyone_dedup.moves import restore
from fiftyone_dedup.moves import manifest as mf
from fiftyone_dedup.moves import trust
from fiftyone_dedup.moves.model import Manifest, ManifestError, Root
from fiftyone_dedup.options import ParameterError

from moving import moved_dataset, rewrite_manifest, names  # noqa: F401 - names: the fixture


def test_restore_refuses_folders_the_dataset_does_not_vouch_for(tmp_path, names):
    root, dup, ds, tree0, made = moved_dataset(tmp_path, names)
    victim = tmp_path / "victim"
    victim.mkdir()
    # the manifest now claims the files came from another folder
    rewrite_manifest(dup, lambda r: r[0]["roots"][0].update(path=str(victim)))
    result = restore.restore(dup)
    assert result.num_restored == 0
    assert (
        "has no record of" in result.moves[0]["error"] and str(victim) in result.moves[0]["error"]
    )
    assert list(victim.iterdir()) == []
    # naming it explicitly is the user's call
    result = restore.restore(dup, trusted_roots=[str(victim)])
    assert result.num_restored == 2 and sorted(p.name for p in (victim / "data" / "sub").iterdir())



def test_crafted_paths_in_a_manifest_touch_nothing_outside(tmp_path, names):
    root, dup, ds, tree0, made = moved_dataset(tmp_path, names)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "evil.jpg"

    def craft(records):
        for r in records:
            if r.get("type") == "file" and r["n"] == 0:
                r["src"] = "../outside/evil.jpg"
                r["dst"] = "ds/../outside/evil.jpg"
            if r.get("type") == "annotation":
                r["backup"] = "../../outside/labels.json"

    rewrite_manifest(dup, craft)
    m = mf.read_manifest(mf.list_manifests(dup)[0])
    assert [e.n for e in m.files] == [1] and m.annotations == []
    assert any("'..'" in p for p in m.problems) and any(
        "not where backups go" in p for p in m.problems
    )
    result = restore.restore(dup)
    assert not target.exists() and list(outside.iterdir()) == []
    # the honest entry went back; the crafted ones were ignored
    assert result.num_restored == 1
    assert os.path.exists(os.path.join(root, made["copies"][1]))



def _manifest(root, dest="ds", layout=None):
    return Manifest(
        path="/dups/manifest-x.jsonl", move_id="x", created="now", dataset="gone",
        dataset_id=None, run_key="dedup", run_timestamp=None, labels="keep", on_samples="keep",
        tag=None, duplicates_dataset=None, label_fields=[],
        roots=[Root(path=root, dest=dest, layout=layout)],
    )


def test_only_folders_someone_vouches_for_are_trusted(tmp_path):
    m = _manifest(str(tmp_path))
    with pytest.raises(ParameterError, match="has no record of") as err:
        trust.check_trust(m, None, None)
    assert err.value.param == "trusted_roots" and "--" not in str(err.value)
    trust.check_trust(m, None, [str(tmp_path) + "/"])


def test_what_a_move_may_write_into_the_duplicates_folder():
    assert trust.written_allowed(_manifest("/data/ds")) == {"ds/samples.json", "ds/metadata.json"}
    assert trust.written_allowed(_manifest("/nonexistent", layout="coco")) == {"ds/labels.json"}
    m = _manifest("/data/ds")
    m.labels = "drop"
    assert trust.written_allowed(m) == set()
    assert trust.is_image_name("a/b.JPG") and not trust.is_image_name("labels.json")
    e = trust.refused(m, 3, "why")
    assert isinstance(e, ManifestError) and "line 3: why; refused" in str(e)
