"""The encoders, by name: what each stores, and what its threshold means.

Pure; knows nothing of FiftyOne. Names are case-insensitive, so the
imagededup spellings (``DHash``, ``CNN``) work.
"""

from dataclasses import dataclass

from fiftyone_dedup.algorithms import hashing
from fiftyone_dedup.algorithms import search


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder stores and how its encodings are compared.

    Attributes:
        name: the canonical lower-case name
        label: the display name
        kind: ``"hash"`` (64-bit hex strings) or ``"embedding"`` (vectors)
        default_field: the sample field the encodings go to by default
        metric: ``"hamming"`` (a distance in bits: lower is closer) or
            ``"cosine"`` (a similarity: higher is closer)
        default_threshold: the default match threshold
        threshold_help: what the threshold means, for forms and ``--help``
    """

    name: str
    label: str
    kind: str
    default_field: str
    metric: str
    default_threshold: float
    threshold_help: str

    @property
    def is_hash(self):
        """Whether encodings are 64-bit hashes."""
        return self.kind == "hash"

    @property
    def similarity(self):
        """Whether higher scores are closer (cosine similarity)."""
        return self.metric == "cosine"

    @property
    def uses_model(self):
        """Whether encodings come from a model (embeddings) rather than a hash."""
        return not self.is_hash

    @property
    def score_name(self):
        """What a pair's score is called: ``"distance"`` or ``"similarity"``."""
        return "similarity" if self.similarity else "distance"

    @property
    def threshold_label(self):
        """The threshold's label in forms."""
        return "Minimum similarity" if self.similarity else "Threshold (bits)"

    @property
    def verb(self):
        """What encoding an image is called: ``"hashed"`` or ``"embedded"``."""
        return "hashed" if self.is_hash else "embedded"

    @property
    def work(self):
        """What encoding is called in progress labels."""
        return "hashing" if self.is_hash else "inference"

    def stricter(self, a, b):
        """Whether threshold ``a`` is stricter than threshold ``b``."""
        return a > b if self.similarity else a < b

    def loosen(self, threshold, margin):
        """A threshold ``margin`` looser, clipped to the metric's range."""
        if not margin:
            return threshold
        if self.similarity:
            return max(-1.0, threshold - margin)
        return min(64, threshold + margin)

    def within(self, scores, threshold):
        """Which scores match at ``threshold`` (a bool array)."""
        import numpy as np

        scores = np.asarray(scores)
        return scores >= threshold if self.similarity else scores <= threshold

    def empty(self, dim=1):
        """An empty array of encodings."""
        import numpy as np

        if self.is_hash:
            return np.zeros(0, dtype=np.uint64)
        return np.zeros((0, dim), dtype=np.float32)

    def pair_scores(self, x, y, a, b):
        """The scores of the pairs ``(x[a], y[b])`` (embeddings normalised)."""
        import numpy as np

        if self.is_hash:
            return np.bitwise_count(np.bitwise_xor(x[a], y[b])).astype(np.int32)
        return np.minimum(np.einsum("ij,ij->i", x[a], y[b]), 1.0).astype(np.float32)

    def pairs(self, codes, threshold, progress=None):
        """Every pair of ``codes`` within ``threshold`` (see :mod:`search`).

        Returns:
            ``(i, j, scores)`` with ``i < j``
        """
        if self.is_hash:
            return search.hamming_pairs(codes, threshold, progress=progress)
        return search.cosine_pairs(codes, threshold, progress=progress, normalized=True)

    def cross(self, query, reference, threshold, progress=None):
        """Every ``(query, reference)`` pair within ``threshold``.

        Returns:
            ``(i, j, scores)``: indices into ``query`` and ``reference``
        """
        if self.is_hash:
            return search.hamming_cross(query, reference, threshold, progress=progress)
        return search.cosine_cross(
            query, reference, threshold, progress=progress, normalized=True
        )

    def validate_threshold(self, threshold):
        """Checks a threshold for this encoder.

        Args:
            threshold: a threshold, or ``None`` for the default

        Returns:
            the threshold, typed for the metric

        Raises:
            ValueError: with a message naming the valid range
        """
        if threshold is None:
            threshold = self.default_threshold
        if self.is_hash:
            return search.validate_hamming_threshold(threshold)
        return search.validate_cosine_threshold(threshold)

    def as_codes(self, values):
        """Stored encodings (hex strings, or vectors: normalised) as a search array."""
        import numpy as np

        if self.is_hash:
            return hashing.hex_to_codes(values)
        return search.normalize(np.asarray(values, dtype=np.float32))


_HASH_HELP = (
    "maximum Hamming distance between two {label} hashes, in bits (0-64); "
    "~10 is typical: lower is stricter"
)

CNN_HELP = (
    "minimum cosine similarity between two CNN embeddings (-1 to 1); "
    "0.82-0.9 is typical: higher is stricter"
)

ENCODERS = {
    name: EncoderSpec(
        name=name,
        label=label,
        kind="hash",
        default_field=name,
        metric="hamming",
        default_threshold=10,
        threshold_help=_HASH_HELP.format(label=label),
    )
    for name, label in (
        ("dhash", "DHash"),
        ("phash", "PHash"),
        ("ahash", "AHash"),
        ("whash", "WHash"),
    )
}
assert set(ENCODERS) == set(hashing.METHODS)

ENCODERS["cnn"] = EncoderSpec(
    name="cnn",
    label="CNN",
    kind="embedding",
    default_field="cnn_embedding",
    metric="cosine",
    # measured: benchmarks/bench_cnn.py (near-duplicates of real photos)
    default_threshold=0.85,
    threshold_help=CNN_HELP,
)


def get_encoder(encoder):
    """Looks an encoder up by name.

    Args:
        encoder: a name such as ``"dhash"``, ``"DHash"`` or ``"CNN"``, or an
            :class:`EncoderSpec`

    Returns:
        an :class:`EncoderSpec`

    Raises:
        ValueError: naming the known encoders
    """
    if isinstance(encoder, EncoderSpec):
        return encoder
    spec = ENCODERS.get(str(encoder).lower())
    if spec is None:
        known = ", ".join(s.label for s in ENCODERS.values())
        raise ValueError(f"Unknown encoder {encoder!r}; expected one of {known}")
    return spec
