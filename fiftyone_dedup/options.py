"""The options of each run type, with their defaults and one validator.

Python (:func:`fiftyone_dedup.find_duplicates` and friends), the App's
operators and the command line all build these objects, so each option is
defaulted and checked in one place. A bad option raises
:class:`ParameterError`, which names the parameter: the command line shows
it as its flag, the App as its form field.

Pure: imports neither FiftyOne nor torch.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

#: the run key used when none is given
DEFAULT_RUN_KEY = "dedup"

#: the tag added to duplicates when none is given
DEFAULT_TAG = "duplicate"

_RESERVED_FIELDS = ("id", "filepath", "tags", "metadata", "media_type")


class ParameterError(ValueError):
    """A bad value for one named parameter.

    ``str(error)`` is the message in Python's words; front ends that call the
    parameter something else (a flag, a form label) use :meth:`for_name`.

    Attributes:
        param: the parameter's Python name, e.g. ``"threshold"``
        message: the message, naming the parameter by its Python name
    """

    def __init__(self, param, message):
        super().__init__(message)
        self.param = param
        self.message = message

    def for_name(self, name):
        """The message with the parameter called ``name`` instead.

        Args:
            name: what the front end calls the parameter, e.g.
                ``"--threshold"``

        Returns:
            the message
        """
        if not name or name == self.param:
            return self.message
        import re

        return re.sub(rf"(?<![\w-]){re.escape(self.param)}(?![\w])", name, self.message)


def check(param, func, *args, **kwargs):
    """Runs a validator, naming ``param`` in any ``ValueError`` it raises.

    Args:
        param: the parameter's name
        func: a validator that raises ``ValueError``
        *args: its arguments
        **kwargs: its keyword arguments

    Returns:
        what ``func`` returns

    Raises:
        ParameterError: for a ``ValueError`` from ``func``
    """
    try:
        return func(*args, **kwargs)
    except ParameterError:
        raise
    except ValueError as e:
        raise ParameterError(param, str(e)) from e


def validate_field_name(name, what="field", param=None):
    """Checks a user-given field name.

    Args:
        name: the name
        what ("field"): what the name is for, for the message
        param (None): the parameter it came from; defaults to ``what``

    Returns:
        the name

    Raises:
        ParameterError: if it is not a usable top-level field name
    """
    param = param or what.replace(" ", "_")
    if not isinstance(name, str) or not name or not name.isidentifier():
        raise ParameterError(
            param,
            f"Invalid {what} {name!r}: use letters, digits and underscores, "
            "not starting with a digit",
        )
    if name in _RESERVED_FIELDS or name.startswith("_"):
        raise ParameterError(param, f"Invalid {what} {name!r}: that name is reserved")
    return name


def validate_run_key(run_key):
    """Checks a run key.

    Args:
        run_key: the key

    Returns:
        the key

    Raises:
        ParameterError: if it is not a valid identifier
    """
    return validate_field_name(run_key, what="run key", param="run_key")


def check_count(value, name, minimum):
    """Checks an optional whole number.

    Args:
        value: the value, or ``None``
        name: the parameter's name
        minimum: the smallest allowed value

    Returns:
        the value as an ``int``, or ``None``

    Raises:
        ParameterError: naming the parameter
    """
    import numbers

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(name, f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ParameterError(name, f"{name} must be at least {minimum}, got {value}")
    return int(value)


@dataclass(frozen=True)
class EncodeOptions:
    """How encodings are computed.

    Attributes:
        encoder ("dhash"): ``"dhash"``, ``"phash"``, ``"ahash"``, ``"whash"``
            or ``"cnn"`` (see :mod:`fiftyone_dedup.algorithms.encoders`)
        field (None): the encodings field; defaults to the encoder's
        compute (True): compute missing or stale encodings
        overwrite (False): recompute all encodings
        exact (False): hash encoders: decode JPEGs fully
        num_workers (None): worker processes for decoding
        invariance (None): ``"flip"``, ``"rotation"`` or ``"dihedral"``
        model (None): CNN only: the embedding model, or an embeddings field
        batch_size (None): CNN only: images per batch
        device ("auto"): CNN only: where the model runs
        executor ("local"): ``"local"`` or ``"ray"``
        ray_address (None): with ``"ray"``, the cluster's address
    """

    encoder: Any = "dhash"
    field: Optional[str] = None
    compute: bool = True
    overwrite: bool = False
    exact: bool = False
    num_workers: Optional[int] = None
    invariance: Optional[str] = None
    model: Any = None
    batch_size: Optional[int] = None
    device: Any = "auto"
    executor: str = "local"
    ray_address: Optional[str] = None

    @property
    def spec(self):
        """The :class:`fiftyone_dedup.algorithms.encoders.EncoderSpec`."""
        from fiftyone_dedup.algorithms import encoders

        return check("encoder", encoders.get_encoder, self.encoder)

    def validated(self):
        """Checks every option.

        Returns:
            a copy with the encoder resolved to its spec and counts typed

        Raises:
            ParameterError: naming the first bad parameter
        """
        from fiftyone_dedup.algorithms import hashing

        spec = self.spec
        if self.field is not None:
            validate_field_name(self.field)
        changes = {
            "encoder": spec,
            "num_workers": check_count(self.num_workers, "num_workers", 0),
            "invariance": check("invariance", hashing.validate_invariance, self.invariance),
            "executor": _check_executor(self.executor, self.ray_address),
        }
        if spec.uses_model:
            check_count(self.batch_size, "batch_size", minimum=1)
            if self.device not in (None, "auto"):  # "auto" always resolves; no torch import
                from fiftyone_dedup.algorithms import models

                check("device", models.resolve_device, self.device)
        elif self.model is not None or self.batch_size is not None:
            raise ParameterError(
                "model" if self.model is not None else "batch_size",
                f"model and batch_size apply to the CNN encoder, not {spec.label}",
            )
        return dataclasses.replace(self, **changes)

    def encode_kwargs(self):
        """The keyword arguments of the encoding functions.

        Returns:
            a dict for :func:`fiftyone_dedup.compute_encodings`
        """
        spec = self.spec
        kwargs = {"num_workers": self.num_workers, "invariance": self.invariance}
        if self.executor == "ray":
            kwargs.update(executor="ray", ray_address=self.ray_address)
        if spec.uses_model:
            kwargs.update(model=self.model, batch_size=self.batch_size, device=self.device)
        else:
            kwargs["exact"] = self.exact
        return kwargs


#: the executors a run can use
EXECUTORS = ("local", "ray")


def validate_executor(executor, ray_address=None):
    """Checks an executor choice.

    Args:
        executor: ``"local"``, ``"ray"`` or ``None`` (local)
        ray_address (None): a Ray address (only with ``"ray"``)

    Returns:
        ``"local"`` or ``"ray"``

    Raises:
        ParameterError: for an unknown executor, or an address without Ray
    """
    executor = "local" if executor is None else executor
    if executor not in EXECUTORS:
        raise ParameterError(
            "executor", f"executor must be one of {', '.join(EXECUTORS)}; got {executor!r}"
        )
    if ray_address is not None and executor != "ray":
        raise ParameterError("executor", "ray_address applies to executor='ray' only")
    return executor


def _check_executor(executor, ray_address):
    if executor in (None, "local") and ray_address is None:
        return "local"
    return validate_executor(executor, ray_address)


@dataclass(frozen=True)
class FindOptions:
    """How duplicates are found, grouped and recorded.

    See :func:`fiftyone_dedup.find_duplicates` for what each option means.

    Attributes:
        threshold (None): the match threshold; defaults to the encoder's
        run_key ("dedup"): the key of the run and prefix of its fields
        keep ("first"): the keep policy (see
            :mod:`fiftyone_dedup.engine.keep`)
        priority (None): for ``keep="priority"``, datasets or folders
        grouping ("near"): ``"near"``, ``"components"`` or ``"dbscan"``
        guard ("kept"): ``"kept"`` or ``"complete"``
        guard_threshold (None): the guard's threshold; ``None`` for the
            engine's default (``threshold``, or the candidate bound when
            verified); may not be looser than ``threshold``
        min_samples (1): DBSCAN's ``min_samples``
        tag ("duplicate"): the tag added to duplicates; ``None`` for none
        save_views (True): save the review views
        histogram (True): record the pair-distance histogram
        verify ("orb"): ``"orb"`` or ``"none"``
        ivf_nprobe (None): with ``executor="ray"`` and CNN: lists probed by
            the inverted-file search; ``None`` for exact search
        write_reference (True): cross runs: also record the run in the
            reference datasets
        encode (EncodeOptions()): how the encodings are computed
    """

    threshold: Any = None
    run_key: str = DEFAULT_RUN_KEY
    keep: Any = "first"
    priority: Any = None
    grouping: str = "near"
    guard: str = "kept"
    guard_threshold: Any = None
    min_samples: int = 1
    tag: Optional[str] = DEFAULT_TAG
    save_views: bool = True
    histogram: bool = True
    verify: Any = "orb"
    ivf_nprobe: Optional[int] = None
    write_reference: bool = True
    encode: EncodeOptions = dataclasses.field(default_factory=EncodeOptions)

    @classmethod
    def from_kwargs(cls, **kwargs):
        """Builds options from the flat keyword arguments of the public API.

        Args:
            **kwargs: any field of :class:`FindOptions` or
                :class:`EncodeOptions`; ``field`` and ``compute`` go to the
                encoding options, ``overwrite_encodings`` to ``overwrite``

        Returns:
            a :class:`FindOptions` (not yet validated)
        """
        enc_names = {f.name for f in dataclasses.fields(EncodeOptions)}
        if "overwrite_encodings" in kwargs:
            kwargs["overwrite"] = kwargs.pop("overwrite_encodings")
        enc = {k: kwargs.pop(k) for k in list(kwargs) if k in enc_names}
        return cls(encode=EncodeOptions(**enc), **kwargs)

    @property
    def spec(self):
        """The encoder's :class:`~fiftyone_dedup.algorithms.encoders.EncoderSpec`."""
        return self.encode.spec

    def validated(self, mode="within"):
        """Checks every option before any work.

        Args:
            mode ("within"): ``"within"``, ``"union"`` or ``"query"``
                (query-vs-reference)

        Returns:
            a copy with defaults resolved and values typed

        Raises:
            ParameterError: naming the first bad parameter
        """
        from fiftyone_dedup.algorithms import grouping, verify
        from fiftyone_dedup.engine import keep

        encode = self.encode.validated()
        spec = encode.encoder
        threshold = check("threshold", spec.validate_threshold, self.threshold)
        validate_run_key(self.run_key)
        check("keep", keep.validate_keep, self.keep, self.priority)
        if self.grouping not in grouping.METHODS:
            raise ParameterError(
                "grouping",
                f"Unknown grouping {self.grouping!r}; expected one of "
                f"{', '.join(grouping.METHODS)}",
            )
        if self.guard not in grouping.GUARDS:
            raise ParameterError(
                "guard",
                f"Unknown guard {self.guard!r}; expected one of "
                f"{', '.join(grouping.GUARDS)} "
                "(an unguarded chain can remove a photo's last copy)",
            )
        guard_threshold = self.guard_threshold  # None: the engine's default
        if guard_threshold is not None:
            guard_threshold = check("guard_threshold", spec.validate_threshold, guard_threshold)
            if spec.stricter(threshold, guard_threshold):
                raise ParameterError(
                    "guard_threshold",
                    f"guard_threshold ({guard_threshold}) must not be looser than "
                    f"threshold ({threshold})",
                )
        ms = self.min_samples
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 1:
            try:
                import numpy as np

                ok = isinstance(ms, np.integer) and ms >= 1
            except ImportError:  # pragma: no cover
                ok = False
            if not ok:
                raise ParameterError(
                    "min_samples", f"min_samples must be an integer >= 1, got {ms!r}"
                )
        if self.tag is not None and (not isinstance(self.tag, str) or not self.tag.strip()):
            raise ParameterError("tag", f"tag must be a non-empty string or None, got {self.tag!r}")
        if mode == "query" and self.grouping != "near":
            raise ParameterError(
                "grouping",
                "Query-vs-reference search supports grouping='near' only: each "
                "query sample points to the reference sample it duplicates",
            )
        method = check("verify", verify.validate_method, self.verify)
        if self.ivf_nprobe is not None and encode.executor != "ray":
            raise ParameterError("ivf_nprobe", "ivf_nprobe applies to executor='ray' only")
        return dataclasses.replace(
            self,
            threshold=threshold,
            guard_threshold=guard_threshold,
            verify=method,
            encode=encode,
        )
