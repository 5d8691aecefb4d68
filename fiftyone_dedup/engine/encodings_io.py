"""Encodings files: plain JSON, ours or imagededup's; pure (no FiftyOne).

Our format keeps each dataset's encodings apart, so files with the same name
in different folders never collide, and records what made them, so a file
made by another encoder or model is refused::

    {
      "format": "fiftyone-dedup-encodings", "version": 1,
      "encoder": "dhash", "model": null,          (null when unknown)
      "datasets": [
        {"name": "dataset_1", "root": "/abs/dataset_1/data",
         "encodings": {"a.jpg": "c3b1...", "sub/b.png": "..."},
         "stamps": {"a.jpg": "1234:1700000000000000000", ...}}
      ]
    }

imagededup's format is one flat object per dataset, ``{filename: hash}`` for
hashes or ``{filename: [floats]}`` for CNN vectors, with file names relative
to the image folder; both are read and written. Files are only ever parsed
as JSON (never unpickled), and names that would point outside their
dataset's folder (``..``, absolute paths) are dropped.
"""

import json
import logging
import math
import os

from fiftyone_dedup.options import ParameterError

logger = logging.getLogger(__name__)

FORMAT = "fiftyone-dedup-encodings"
VERSION = 1


class EncodingsFileError(ValueError):
    """An encodings file cannot be used; the message names the file."""


class EncodingsParameterError(ParameterError, EncodingsFileError):
    """Encodings that do not fit a parameter of the run (such as the
    encoder); names it (see :class:`fiftyone_dedup.options.ParameterError`)."""


class EncodingsSet:
    """The encodings of one dataset.

    Attributes:
        name: a name for messages (the file or folder name)
        root: the image folder the names are relative to, or None if unknown
        encodings: a dict of relative name -> 16-hex-digit hash or list of
            floats
        stamps: a dict of relative name -> file stamp (``"size:mtime_ns"``)
            when known
        written_at: when the file was written (its mtime), for files without
            stamps
    """

    def __init__(self, name, root=None, encodings=None, stamps=None, written_at=None):
        self.name = name
        self.root = root
        self.encodings = dict(encodings or {})
        self.stamps = dict(stamps or {})
        self.written_at = written_at

    def __len__(self):
        return len(self.encodings)


class Encodings:
    """Encodings of one or more datasets, from one encoder.

    Attributes:
        kind: ``"hash"`` or ``"embedding"``
        encoder: the encoder name, or None if unknown (imagededup files)
        model: the model name for embeddings, or None
        sets: a list of :class:`EncodingsSet`
    """

    def __init__(self, kind, encoder=None, model=None, sets=None):
        self.kind = kind
        self.encoder = encoder
        self.model = model
        self.sets = list(sets or [])

    @property
    def dim(self):
        """The vector length of embeddings, or None."""
        for s in self.sets:
            for v in s.encodings.values():
                return len(v) if isinstance(v, list) else None
        return None

    def __len__(self):
        return sum(len(s) for s in self.sets)


def with_json_suffix(path):
    """The path with ``.json`` added when it has no suffix (as the seed
    script accepted ``--encodings_in ~/enc_2`` for ``~/enc_2.json``).

    Args:
        path: a path

    Returns:
        the path to use
    """
    path = os.path.expanduser(str(path))
    if os.path.splitext(path)[1]:
        return path
    return path + ".json"


def resolve_input_path(path):
    """The existing file for an ``--encodings_in`` argument.

    Args:
        path: the path as given (``.json`` may be omitted)

    Returns:
        an absolute path

    Raises:
        EncodingsFileError: if neither the path nor the path + ``.json``
            exists
    """
    given = os.path.expanduser(str(path))
    for candidate in (given, with_json_suffix(given)):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    for candidate in (given, with_json_suffix(given)):
        if os.path.exists(candidate) and not os.path.isdir(candidate):
            # a FIFO or device would block or never end: never opened
            raise EncodingsFileError(
                f"{os.path.abspath(candidate)}: not a regular file (a named pipe, "
                "socket or device); give a JSON file"
            )
    raise EncodingsFileError(f"Encodings file not found: {given} (nor {with_json_suffix(given)})")


def safe_name(name):
    """A relative name that stays inside its folder, or None.

    Args:
        name: a file name from an encodings file

    Returns:
        the normalised relative name, or None if it is absolute, escapes
        with ``..``, or is empty
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        return None
    if not _is_unicode(name):
        return None
    if os.path.isabs(name) or name.startswith(("/", "\\")):
        return None
    norm = os.path.normpath(name)
    if norm in (".", "") or norm == ".." or norm.startswith(".." + os.sep):
        return None
    return norm


def _is_unicode(text):
    # JSON can spell lone surrogates (\udc80), which no file name holds
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _is_finite_number(x):
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # an int beyond any float (e.g. 400 digits)
        return False


def _check_hash(value):
    if not isinstance(value, str) or len(value) != 16:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


def _check_vector(value):
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(_is_finite_number(x) for x in value)
    )


def _kind_of(value):
    if _check_hash(value):
        return "hash"
    if _check_vector(value):
        return "embedding"
    return None


def _clean_entries(path, entries, kind=None):
    """Validates a {name: encoding} mapping; returns (kind, clean dict)."""
    if not isinstance(entries, dict):
        raise EncodingsFileError(f"{path}: expected an object of file name -> encoding")
    clean, dropped, bad = {}, 0, 0
    for name, value in entries.items():
        if isinstance(name, str) and not _is_unicode(name):
            raise EncodingsFileError(
                f"{path}: the file name {name!r} is not valid Unicode (it holds a "
                "lone surrogate), so no file can have it"
            )
        rel = safe_name(name)
        if rel is None:
            dropped += 1
            continue
        k = _kind_of(value)
        if k is None or (kind is not None and k != kind):
            bad += 1
            continue
        kind = kind or k
        clean[rel] = value
    if dropped:
        logger.warning("%s: ignored %d name(s) outside the dataset folder", path, dropped)
    if bad:
        raise EncodingsFileError(
            f"{path}: {bad} value(s) are neither 64-bit hex hashes nor vectors "
            "of numbers (or mix the two)"
        )
    if clean and kind == "embedding":
        dims = {len(v) for v in clean.values()}
        if len(dims) > 1:
            raise EncodingsFileError(f"{path}: vectors of different lengths {sorted(dims)}")
    return kind, clean


def read(path):
    """Reads an encodings file, ours or imagededup's.

    Args:
        path: the file (``.json`` may be omitted)

    Returns:
        an :class:`Encodings`

    Raises:
        EncodingsFileError: with a message naming the file and the problem
    """
    path = resolve_input_path(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except UnicodeDecodeError:
        raise EncodingsFileError(f"{path}: not a UTF-8 text file") from None
    except json.JSONDecodeError as e:
        raise EncodingsFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise EncodingsFileError(
            f"{path}: JSON nested too deeply to be an encodings file"
        ) from None
    except ValueError as e:  # Python refuses integers of over 4300 digits
        why = "a number with thousands of digits" if "digits" in str(e) else _first_line(e)
        raise EncodingsFileError(f"{path}: not usable as encodings ({why})") from None
    except OSError as e:
        raise EncodingsFileError(f"{path}: cannot read ({e.strerror})") from None
    written_at = os.path.getmtime(path)
    name = os.path.splitext(os.path.basename(path))[0]

    if isinstance(data, dict) and data.get("format") == FORMAT:
        return _read_ours(path, data, written_at)
    if isinstance(data, dict):
        kind, clean = _clean_entries(path, data)
        if kind is None:
            raise EncodingsFileError(f"{path}: holds no encodings")
        return Encodings(kind, sets=[EncodingsSet(name, None, clean, written_at=written_at)])
    raise EncodingsFileError(
        f"{path}: expected a JSON object (imagededup's {{filename: encoding}} or "
        "ours), got " + type(data).__name__
    )


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _read_ours(path, data, written_at):
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= VERSION:
        digits = len(str(abs(version))) if isinstance(version, int) else 0
        if not isinstance(version, bool) and digits > 20:
            version = f"{str(version)[:12]}... ({len(str(abs(version)))} digits)"
        raise EncodingsFileError(f"{path}: unsupported version {version!r} (this reads {VERSION})")
    encoder = data.get("encoder")
    model = data.get("model")
    if encoder is not None and not (isinstance(encoder, str) and _is_unicode(encoder)):
        raise EncodingsFileError(f"{path}: the encoder must be a name")
    if model is not None and not (isinstance(model, str) and _is_unicode(model)):
        raise EncodingsFileError(f"{path}: the model must be a name")
    sets_in = data.get("datasets")
    if not isinstance(sets_in, list):
        raise EncodingsFileError(f"{path}: 'datasets' must be a list")
    kind, sets = None, []
    for i, d in enumerate(sets_in):
        if not isinstance(d, dict):
            raise EncodingsFileError(f"{path}: datasets[{i}] must be an object")
        k, clean = _clean_entries(path, d.get("encodings", {}), kind)
        kind = kind or k
        root = d.get("root")
        if isinstance(root, str) and not _is_unicode(root):
            raise EncodingsFileError(f"{path}: datasets[{i}].root is not valid Unicode")
        if root is not None and (not isinstance(root, str) or not os.path.isabs(root)):
            raise EncodingsFileError(f"{path}: datasets[{i}].root must be an absolute path")
        stamps = d.get("stamps") or {}
        if not isinstance(stamps, dict):
            raise EncodingsFileError(f"{path}: datasets[{i}].stamps must be an object")
        stamps = {
            safe_name(k2): v for k2, v in stamps.items()
            if safe_name(k2) in clean and isinstance(v, str)
        }
        dname = d.get("name")
        if not isinstance(dname, str) or not _is_unicode(dname):
            dname = f"dataset_{i + 1}"
        sets.append(EncodingsSet(dname, root, clean, stamps, written_at))
    if kind is None:
        kind = _kind_for_encoder(encoder)
    elif encoder is not None and kind != _kind_for_encoder(encoder):
        raise EncodingsFileError(f"{path}: the encodings do not match encoder {encoder}")
    return Encodings(kind, encoder=encoder, model=model, sets=sets)


def _kind_for_encoder(encoder):
    return "embedding" if str(encoder).lower() == "cnn" else "hash"


def merge(encodings_list):
    """Merges encodings of several files; datasets stay apart.

    Args:
        encodings_list: :class:`Encodings` objects

    Returns:
        one :class:`Encodings`

    Raises:
        EncodingsFileError: if they come from different encoders, models, or
            vector lengths
    """
    out = None
    for e in encodings_list:
        if out is None:
            out = Encodings(e.kind, e.encoder, e.model, [])
        if e.kind != out.kind:
            raise EncodingsFileError("Cannot merge hash encodings with CNN embeddings")
        if e.encoder and out.encoder and e.encoder != out.encoder:
            raise EncodingsFileError(
                f"Cannot merge encodings of encoder {e.encoder} with {out.encoder}"
            )
        if e.model and out.model and e.model != out.model:
            raise EncodingsFileError(f"Cannot merge embeddings of model {e.model} with {out.model}")
        if e.dim and out.dim and e.dim != out.dim:
            raise EncodingsFileError(
                f"Cannot merge embeddings of {e.dim} dimensions with {out.dim}"
            )
        out.encoder = out.encoder or e.encoder
        out.model = out.model or e.model
        names = {s.name for s in out.sets}
        for s in e.sets:
            name, k = s.name, 2
            while name in names:
                name, k = f"{s.name}-{k}", k + 1
            names.add(name)
            out.sets.append(EncodingsSet(name, s.root, s.encodings, s.stamps, s.written_at))
    return out or Encodings("hash")


def check_compatible(encodings, spec, model=None, dim=None, path="encodings"):
    """Refuses encodings made by another encoder or model than the run's.

    Args:
        encodings: an :class:`Encodings`
        spec: the run's ``EncoderSpec``
        model (None): the run's model name, for embeddings
        dim (None): the run's embedding length, if known
        path ("encodings"): the file(s), for messages

    Raises:
        EncodingsFileError: saying what made the file and what the run uses
    """
    if encodings.kind != spec.kind:
        made = "hashes" if encodings.kind == "hash" else "CNN embeddings"
        raise EncodingsParameterError(
            "encoder", f"{path} holds {made}, but this run uses encoder {spec.label}"
        )
    if encodings.encoder and encodings.encoder.lower() != spec.name:
        raise EncodingsFileError(
            f"{path} was made with encoder {encodings.encoder}, but this run "
            f"uses {spec.label}"
        )
    if model and encodings.model and encodings.model != model:
        raise EncodingsFileError(
            f"{path} was made with model {encodings.model}, but this run uses {model}"
        )
    if dim and encodings.dim and encodings.dim != dim:
        raise EncodingsFileError(
            f"{path} holds {encodings.dim}-d embeddings, but the run's model makes "
            f"{dim}-d ones (another model made this file)"
        )


def load_json_or_none(path):
    """The JSON in a regular file, or None when it is not one, cannot be
    read or is not JSON (a FIFO or device is never opened).

    Args:
        path: a file path

    Returns:
        the parsed value, or None
    """
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, RecursionError):
        return None


def is_encodings_file(path):
    """Whether ``--encodings_out`` may overwrite a file: one that is an
    encodings file, ours or imagededup's (``{}`` included)."""
    data = load_json_or_none(path)
    if data == {}:
        return True
    if data is None:
        return False
    try:
        read(path)
    except EncodingsFileError:
        return False
    return True


def write(path, encodings, style="fiftyone"):
    """Writes encodings as JSON, atomically.

    Args:
        path: the file (``.json`` added when it has no suffix)
        encodings: an :class:`Encodings`
        style ("fiftyone"): ``"fiftyone"`` (ours, datasets apart) or
            ``"imagededup"`` (one flat ``{filename: encoding}``; with several
            datasets, names are prefixed with their dataset's name)

    Returns:
        the path written
    """
    path = os.path.abspath(with_json_suffix(path))
    if style == "imagededup":
        flat = {}
        multi = len(encodings.sets) > 1
        for s in encodings.sets:
            for name, value in s.encodings.items():
                key = f"{s.name}/{name}" if multi else name
                flat[key] = value
        obj = flat
    elif style == "fiftyone":
        obj = {
            "format": FORMAT,
            "version": VERSION,
            "encoder": encodings.encoder,
            "model": encodings.model,
            "datasets": [
                {"name": s.name, "root": s.root, "encodings": s.encodings, "stamps": s.stamps}
                for s in encodings.sets
            ],
        }
    else:
        raise ValueError(f"Unknown encodings style {style!r}; expected fiftyone or imagededup")
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def stale_reason(set_, rel_name, current_stamp, current_mtime):
    """Why a stored encoding cannot be trusted any more, or None.

    Args:
        set_: the :class:`EncodingsSet`
        rel_name: the file's relative name
        current_stamp: the file's current stamp, or None if it is gone
        current_mtime: the file's modification time, or None

    Returns:
        ``"gone"``, ``"changed"``, or None if the encoding still holds
    """
    if current_stamp is None:
        return "gone"
    stored = set_.stamps.get(rel_name)
    if stored is not None:
        return None if stored == current_stamp else "changed"
    # imagededup files carry no stamps: a file modified after the encodings
    # file was written may have changed
    written = set_.written_at
    if written is not None and current_mtime is not None and current_mtime > written:
        return "changed"
    return None
