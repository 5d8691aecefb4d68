"""Encodings files: formats, merging, compatibility, and a fuzzed reader."""

import json
import os

import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.cli import flags
from fiftyone_dedup.engine import encodings_io as eio


def _write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)
    return str(path)


def test_imagededup_flat_files_read_and_json_suffix_optional(tmp_path):
    _write(tmp_path / "enc_1.json", {"a.jpg": "00ff00ff00ff00ff", "sub/b.png": "ffffffffffffffff"})
    e = eio.read(tmp_path / "enc_1")  # .json may be omitted
    assert e.kind == "hash" and e.encoder is None
    assert e.sets[0].name == "enc_1" and e.sets[0].root is None
    assert e.sets[0].encodings == {"a.jpg": "00ff00ff00ff00ff", "sub/b.png": "ffffffffffffffff"}
    _write(tmp_path / "vec.json", {"a.jpg": [0.1, 0.2, 0.3]})
    v = eio.read(tmp_path / "vec.json")
    assert v.kind == "embedding" and v.dim == 3


def test_merge_keeps_datasets_apart_with_shared_names(tmp_path):
    _write(tmp_path / "x.json", {"a.jpg": "00000000000000ff"})
    os.makedirs(tmp_path / "other")
    _write(tmp_path / "other" / "x.json", {"a.jpg": "ff00000000000000"})
    merged = eio.merge([eio.read(tmp_path / "x.json"), eio.read(tmp_path / "other" / "x.json")])
    assert [s.name for s in merged.sets] == ["x", "x-2"]
    assert [s.encodings["a.jpg"] for s in merged.sets] == ["00000000000000ff", "ff00000000000000"]
    out = eio.write(tmp_path / "merged", merged)
    assert out.endswith("merged.json")
    back = eio.read(out)
    assert [s.encodings for s in back.sets] == [s.encodings for s in merged.sets]
    flat = json.load(open(eio.write(tmp_path / "flat.json", merged, style="imagededup")))
    assert flat == {"x/a.jpg": "00000000000000ff", "x-2/a.jpg": "ff00000000000000"}


def test_round_trip_is_lossless(tmp_path):
    enc = eio.Encodings(
        "embedding", "cnn", "efficientnet-lite0",
        [eio.EncodingsSet("d1", "/data/d1", {"a.jpg": [0.125, -1.5, 3e-7]}, {"a.jpg": "10:20"})],
    )
    back = eio.read(eio.write(tmp_path / "e.json", enc))
    assert back.encoder == "cnn" and back.model == "efficientnet-lite0"
    s = back.sets[0]
    assert (s.name, s.root, s.encodings, s.stamps) == (
        "d1", "/data/d1", {"a.jpg": [0.125, -1.5, 3e-7]}, {"a.jpg": "10:20"}
    )


def test_other_encoder_or_model_is_refused(tmp_path):
    hashes = eio.read(_write(tmp_path / "h.json", {"a.jpg": "00ff00ff00ff00ff"}))
    with pytest.raises(eio.EncodingsFileError) as err:
        eio.check_compatible(hashes, encoders.get_encoder("cnn"))
    # the engine names the parameter; the command line shows it as its flag
    assert "holds hashes, but this run uses --encoder CNN" in flags.user_text(err.value)
    ours = eio.Encodings(
        "hash", "phash", None, [eio.EncodingsSet("d", None, {"a.jpg": "00ff00ff00ff00ff"})]
    )
    with pytest.raises(eio.EncodingsFileError, match="made with encoder phash"):
        eio.check_compatible(ours, encoders.get_encoder("dhash"))
    vecs = eio.Encodings(
        "embedding", "cnn", "mobilenet", [eio.EncodingsSet("d", None, {"a": [1.0, 2.0]})]
    )
    with pytest.raises(eio.EncodingsFileError, match="made with model mobilenet"):
        eio.check_compatible(vecs, encoders.get_encoder("cnn"), model="efficientnet-lite0")
    with pytest.raises(eio.EncodingsFileError, match="2-d embeddings"):
        eio.check_compatible(vecs, encoders.get_encoder("cnn"), dim=1280)
    with pytest.raises(eio.EncodingsFileError, match="Cannot merge hash encodings"):
        eio.merge([hashes, vecs])


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"a.jpg": "xyz"}', "neither 64-bit hex hashes nor vectors"),
        ('{"a.jpg": [1, "x"]}', "neither 64-bit hex hashes nor vectors"),
        ('{"a.jpg": [1, 2], "b.jpg": [1]}', "different lengths"),
        ('{"format": "fiftyone-dedup-encodings", "version": 99}', "unsupported version"),
        ('{"format": "fiftyone-dedup-encodings", "version": -1}', "unsupported version -1"),
        ('{"format": "fiftyone-dedup-encodings", "version": 0}', "unsupported version 0"),
        ('{"format": "fiftyone-dedup-encodings", "version": true}', "unsupported version True"),
        ('{"format": "fiftyone-dedup-encodings", "version": 1.0}', "unsupported version 1.0"),
        ('{"a.jpg": [1, %s]}' % ("9" * 400), "neither 64-bit hex hashes nor vectors"),
        ('{"a.jpg": [1, %s]}' % ("9" * 5000), "a number with thousands of digits"),
        ('{"a.jpg": ' + "[" * 50000 + "]" * 50000 + "}", "nested too deeply"),
        ('{"a\\udc80.jpg": "00ff00ff00ff00ff"}', "not valid Unicode"),
        (
            '{"format": "fiftyone-dedup-encodings", "version": 1, "encoder": "dhash", '
            '"datasets": [{"root": "/a\\udc80", "encodings": {}}]}',
            "root is not valid Unicode",
        ),
        (
            '{"format": "fiftyone-dedup-encodings", "version": 1, "encoder": "dhash", '
            '"datasets": [{"root": "rel", "encodings": {}}]}',
            "absolute path",
        ),
    ],
)
def test_bad_files_name_the_file_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(eio.EncodingsFileError, match=message) as err:
        eio.read(path)
    assert str(path) in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(eio.EncodingsFileError, match="not found"):
        eio.read(tmp_path / "nope")


def test_names_outside_the_folder_are_dropped(tmp_path):
    path = _write(tmp_path / "e.json", {
        "../../etc/passwd": "00ff00ff00ff00ff", "/abs/x.jpg": "00ff00ff00ff00ff",
        "ok/../fine.jpg": "00ff00ff00ff00ff", "a/./b.jpg": "00ff00ff00ff00ff",
    })
    e = eio.read(path)
    assert set(e.sets[0].encodings) == {"fine.jpg", os.path.join("a", "b.jpg")}


def test_stale_reasons():
    s = eio.EncodingsSet("d", None, {"a": "0" * 16, "b": "0" * 16}, {"a": "1:2"}, written_at=100.0)
    assert eio.stale_reason(s, "a", "1:2", 200.0) is None
    assert eio.stale_reason(s, "a", "1:3", 200.0) == "changed"
    assert eio.stale_reason(s, "a", None, None) == "gone"
    assert eio.stale_reason(s, "b", "5:5", 50.0) is None  # older than the file
    assert eio.stale_reason(s, "b", "5:5", 150.0) == "changed"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.one_of(
        _json,
        st.dictionaries(
            st.text(max_size=30),
            st.one_of(st.text(max_size=20), st.lists(st.floats(), max_size=4)),
        ),
        st.fixed_dictionaries({
            "format": st.just("fiftyone-dedup-encodings"),
            "version": st.one_of(st.just(1), st.integers()),
            "encoder": st.one_of(st.just("dhash"), st.text(max_size=5), st.none()),
            "datasets": st.lists(
                st.dictionaries(
                    st.sampled_from(["name", "root", "encodings", "stamps"]), _json
                ),
                max_size=3,
            ),
        }),
    )
)
def test_reader_fuzz_never_crashes_nor_escapes(tmp_path, payload):
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(payload))
    try:
        e = eio.read(path)
    except eio.EncodingsFileError:
        return
    for s in e.sets:
        for name in s.encodings:
            assert not os.path.isabs(name)
            assert not os.path.normpath(name).startswith("..")
            assert eio.safe_name(name) == name
        assert s.root is None or os.path.isabs(s.root)
