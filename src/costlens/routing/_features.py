"""Prompt features for the learned router: hashed word and character n-grams, TF-IDF weighted, plus a few
length counts. One implementation serves training and deciding, so a saved router predicts exactly
what the trained one did.

How a prompt becomes features (the definition, so the saved file is meaningful without this code):

- the text is lower-cased and every run of whitespace becomes one space;
- each n-gram is named by a 64-bit hash: a polynomial hash of its Unicode code points (each + 1) with
  multiplier `_P` modulo 2**64, plus a per-kind salt, through the splitmix64 finaliser. Word bigrams
  hash the pair of their words' hashes. Kinds: word n-grams (words are runs of ASCII letters, digits,
  `_` and non-ASCII characters outside the punctuation, symbol and space blocks) and character n-grams
  (every substring of the normalised text of each length in `char_ngrams`, spaces included);
- a block's vocabulary is the sorted array of hashes it kept; a feature's weight is
  `(1 + ln count) * idf`, and each block (words, characters) is L2-normalised on its own;
- dense counts: ln(1 + x) of the normalised text's characters, its words, its numbers (runs of ASCII
  digits), the prompt's lines and its capital letters (ASCII A-Z), standardised with the training rows'
  mean and standard deviation and clipped to [-3, 3].

Everything is numpy array arithmetic (no per-n-gram Python loop): substring hashes come from prefix sums
of `code * _P**-j`, vocabulary look-ups from a linear-probing table probed a whole array at a time.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    U64 = npt.NDArray[np.uint64]
    I64 = npt.NDArray[np.int64]
    F64 = npt.NDArray[np.float64]

__all__ = ["DENSE_FEATURES", "Featurizer", "Hashed", "hash_prompt"]

_MASK64 = (1 << 64) - 1
_P = 0x100000001B3  # odd, so invertible modulo 2**64
_Q = pow(_P, -1, 1 << 64)
_PAIR = 0x9E3779B97F4A7C15
_SALT_WORD = 0x5157_0000_0000_0001
_SALT_BIGRAM = 0x5157_0000_0000_0002
_SALT_CHAR = 0x5157_0000_0000_0100  # + n
DENSE_CLIP = 3.0  # standardised counts are clipped: prompts unlike any training prompt do not extrapolate
DENSE_FEATURES = ("log_chars", "log_words", "log_numbers", "log_lines", "log_capitals")
# Non-ASCII code points that separate words: Latin-1 punctuation and spaces, general punctuation,
# arrows to dingbats, CJK punctuation, fullwidth ASCII punctuation.
_SEPARATOR_BLOCKS = (
    (0x80, 0xBF),
    (0xD7, 0xD7),
    (0xF7, 0xF7),
    (0x2000, 0x206F),
    (0x2190, 0x2BFF),
    (0x3000, 0x303F),
    (0xFE30, 0xFE4F),
    (0xFF00, 0xFF0F),
    (0xFF1A, 0xFF20),
)


class _Powers:
    """P**i and P**-i modulo 2**64 for i < n, grown on demand (threads share it; growing swaps arrays)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pos: U64 | None = None
        self.neg: U64 | None = None

    def upto(self, n: int) -> tuple[U64, U64]:
        pos, neg = self.pos, self.neg
        if pos is not None and neg is not None and len(pos) >= n:
            return pos, neg
        import numpy as np

        with self._lock:
            size = max(4096, 1 << max(n, 1).bit_length())
            one = np.ones(1, dtype=np.uint64)
            grown = []
            for base in (_P, _Q):
                powers: U64 = np.cumprod(np.full(size, base, dtype=np.uint64), dtype=np.uint64)
                grown.append(np.concatenate([one, powers[:-1]]))
            self.pos, self.neg = grown
            return grown[0], grown[1]


_POWERS = _Powers()
_TABLES: tuple[Any, Any] | None = None
_SPACES = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
)  # exactly what str.split() splits on


def _tables() -> tuple[Any, Any]:
    """Per BMP code point: is it a word character; is it whitespace."""
    global _TABLES
    if _TABLES is None:
        import numpy as np

        word = np.zeros(0x10000, dtype=bool)
        for lo, hi in (("0", "9"), ("a", "z"), ("A", "Z"), ("_", "_")):
            word[ord(lo) : ord(hi) + 1] = True
        word[0x80:] = True
        for lo_cp, hi_cp in _SEPARATOR_BLOCKS:
            word[lo_cp : hi_cp + 1] = False
        space = np.zeros(0x10000, dtype=bool)
        space[[ord(c) for c in _SPACES]] = True
        _TABLES = (word, space)
    return _TABLES


def _mix(x: U64) -> U64:
    """splitmix64's finaliser, in place on a fresh array."""
    import numpy as np

    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


@dataclass(frozen=True, slots=True)
class Hashed:
    """One prompt as hashes: word n-grams, character n-grams, and the raw dense counts."""

    words: U64
    chars: U64
    dense: F64


def hash_prompt(text: str, *, word_ngrams: int, char_ngrams: tuple[int, int] | None) -> Hashed:
    """The n-gram hashes of one prompt (see the module docstring for the exact definition)."""
    import numpy as np

    word_table, space_table = _tables()
    raw = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    capitals = int(np.count_nonzero((raw >= 65) & (raw <= 90)))
    raw = np.frombuffer(text.lower().encode("utf-32-le"), dtype=np.uint32)
    bmp = np.minimum(raw, 0xFFFF)
    space = space_table[bmp]
    keep = ~space
    keep[1:] |= ~space[:-1]  # a space survives only after a non-space: runs become one space
    codes = np.where(space, np.uint32(32), raw)[keep]
    if len(codes) and codes[-1] == 32:
        codes = codes[:-1]
    n = len(codes)
    pos, neg = _POWERS.upto(n + 1)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum((codes.astype(np.uint64) + np.uint64(1)) * neg[:n], out=prefix[1:])

    def spans(start: I64, end: I64, salt: int) -> U64:
        return _mix((prefix[end] - prefix[start]) * pos[end - 1] + np.uint64(salt))

    is_word = word_table[np.minimum(codes, 0xFFFF)] | (codes > 0xFFFF)
    edge = np.diff(is_word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edge == 1)
    ends = np.flatnonzero(edge == -1)
    words = spans(starts, ends, _SALT_WORD)
    if word_ngrams >= 2 and len(words) > 1:
        pair = _mix(words[:-1] * np.uint64(_PAIR) + words[1:] + np.uint64(_SALT_BIGRAM))
        words = np.concatenate([words, pair])
    chars: list[U64] = []
    if char_ngrams is not None:
        for k in range(char_ngrams[0], char_ngrams[1] + 1):
            if n >= k:
                first = np.arange(n - k + 1, dtype=np.int64)
                chars.append(spans(first, first + k, _SALT_CHAR + k))
    digit = (codes >= 48) & (codes <= 57)
    numbers = int(digit[:1].sum()) + int(np.count_nonzero(digit[1:] & ~digit[:-1]))
    dense = np.array(
        [
            math.log1p(n),
            math.log1p(len(starts)),
            math.log1p(numbers),
            math.log1p(text.count("\n") + 1 if n else 0),
            math.log1p(capitals),
        ]
    )
    return Hashed(words, np.concatenate(chars) if chars else np.zeros(0, dtype=np.uint64), dense)


class _Lookup:
    """Hash -> column: a linear-probing table (load factor <= 1/8), probed for a whole array at once."""

    def __init__(self, keys: U64) -> None:
        import numpy as np

        self.size = len(keys)
        bits = max(4, (8 * max(len(keys), 1) - 1).bit_length())
        self.mask = (1 << bits) - 1
        self.keys = np.zeros(1 << bits, dtype=np.uint64)
        self.cols = np.full(1 << bits, -1, dtype=np.int64)
        pending = np.arange(len(keys), dtype=np.int64)
        slot = (keys & np.uint64(self.mask)).astype(np.int64)
        placed = np.zeros(len(keys), dtype=bool)
        while len(pending):  # each round places, per free slot, the first key that wants it
            s = slot[pending]
            free = self.cols[s] < 0
            slots, first = np.unique(s[free], return_index=True)
            won = pending[free][first]
            self.cols[slots] = won
            self.keys[slots] = keys[won]
            placed[won] = True
            pending = pending[~placed[pending]]
            slot[pending] = (slot[pending] + 1) & self.mask

    def find(self, hashes: U64) -> I64:
        """Columns of the hashes that are in the vocabulary, one entry per occurrence."""
        import numpy as np

        out: list[I64] = []
        active = hashes
        slot = (hashes & np.uint64(self.mask)).astype(np.int64)
        while len(active):
            cols = self.cols[slot]
            occupied = cols >= 0
            hit = occupied & (self.keys[slot] == active)
            out.append(cols[hit])
            again = occupied & ~hit
            active = active[again]
            slot = (slot[again] + 1) & self.mask
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


class Featurizer:
    """Fitted TF-IDF state: per block (words, chars) the kept hashes (sorted) and their idf, and the
    dense counts' mean and standard deviation. Columns: words, then chars, then the dense counts."""

    def __init__(
        self,
        *,
        word_ngrams: int,
        char_ngrams: tuple[int, int] | None,
        word_vocab: U64,
        word_idf: F64,
        char_vocab: U64,
        char_idf: F64,
        dense_mean: F64,
        dense_std: F64,
    ) -> None:
        if len(word_vocab) != len(word_idf) or len(char_vocab) != len(char_idf):
            raise ValueError("each vocabulary needs one idf per entry")
        if dense_mean.shape != (len(DENSE_FEATURES),) or dense_std.shape != (len(DENSE_FEATURES),):
            raise ValueError(f"the dense statistics need {len(DENSE_FEATURES)} entries")
        if word_ngrams not in (1, 2) or (
            char_ngrams is not None and not 1 <= char_ngrams[0] <= char_ngrams[1]
        ):
            raise ValueError("word n-grams must be 1 or 2, character n-grams a range such as (3, 5)")
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.word_vocab, self.word_idf = word_vocab, word_idf
        self.char_vocab, self.char_idf = char_vocab, char_idf
        self.dense_mean, self.dense_std = dense_mean, dense_std
        self._words = _Lookup(word_vocab)
        self._chars = _Lookup(char_vocab)

    @property
    def n_columns(self) -> int:
        return len(self.word_vocab) + len(self.char_vocab) + len(DENSE_FEATURES)

    def hash(self, text: str) -> Hashed:
        return hash_prompt(text, word_ngrams=self.word_ngrams, char_ngrams=self.char_ngrams)

    def transform_hashed(self, hashed: Hashed) -> tuple[I64, F64]:
        """Sparse columns and values of one hashed prompt (dense counts last)."""
        import numpy as np

        cols: list[I64] = []
        vals: list[F64] = []
        offset = 0
        for lookup, idf, hashes in (
            (self._words, self.word_idf, hashed.words),
            (self._chars, self.char_idf, hashed.chars),
        ):
            found = lookup.find(hashes)
            if len(found):
                counts = np.bincount(found, minlength=lookup.size)
                uniq = np.flatnonzero(counts)
                weight = (1.0 + np.log(counts[uniq])) * idf[uniq]
                weight /= math.sqrt(float(weight @ weight))
                cols.append(uniq + offset)
                vals.append(weight)
            offset += lookup.size
        cols.append(np.arange(offset, offset + len(DENSE_FEATURES), dtype=np.int64))
        vals.append(np.clip((hashed.dense - self.dense_mean) / self.dense_std, -DENSE_CLIP, DENSE_CLIP))
        return np.concatenate(cols), np.concatenate(vals)

    def transform_one(self, text: str) -> tuple[I64, F64]:
        return self.transform_hashed(self.hash(text))

    def matrix(self, hashed: Sequence[Hashed]) -> Any:
        """The scipy CSR matrix (rows x n_columns) of many hashed prompts, for training."""
        import numpy as np
        from scipy import sparse

        indptr = [0]
        cols: list[I64] = []
        vals: list[F64] = []
        for h in hashed:
            c, v = self.transform_hashed(h)
            cols.append(c)
            vals.append(v)
            indptr.append(indptr[-1] + len(c))
        return sparse.csr_matrix(
            (np.concatenate(vals), np.concatenate(cols), np.array(indptr)),
            shape=(len(hashed), self.n_columns),
        )

    @classmethod
    def fit(
        cls,
        hashed: Sequence[Hashed],
        *,
        word_ngrams: int,
        char_ngrams: tuple[int, int] | None,
        min_df: int,
        max_word_features: int,
        max_char_features: int,
    ) -> Featurizer:
        """Keep, per block, the hashes in at least `min_df` prompts (the most frequent when capped);
        idf = ln((1 + n) / (1 + df)) + 1 as scikit-learn's smoothed idf."""
        import numpy as np

        n = len(hashed)

        def vocab(blocks: list[U64], cap: int) -> tuple[U64, F64]:
            if not blocks or cap <= 0:
                return np.zeros(0, dtype=np.uint64), np.zeros(0)
            keys, df = np.unique(np.concatenate([np.unique(b) for b in blocks]), return_counts=True)
            keep = df >= min_df
            keys, df = keys[keep], df[keep]
            if len(keys) > cap:
                order = np.lexsort((keys, -df))[:cap]  # most frequent first, ties by hash
                order.sort()
                keys, df = keys[order], df[order]
            return keys, np.log((1.0 + n) / (1.0 + df)) + 1.0

        word_vocab, word_idf = vocab([h.words for h in hashed], max_word_features)
        char_vocab, char_idf = vocab([h.chars for h in hashed], max_char_features)
        dense = np.array([h.dense for h in hashed]) if n else np.zeros((0, len(DENSE_FEATURES)))
        mean = dense.mean(axis=0) if n else np.zeros(len(DENSE_FEATURES))
        std = dense.std(axis=0) if n else np.ones(len(DENSE_FEATURES))
        std = np.where(std > 1e-12, std, 1.0)
        return cls(
            word_ngrams=word_ngrams,
            char_ngrams=char_ngrams,
            word_vocab=word_vocab,
            word_idf=word_idf,
            char_vocab=char_vocab,
            char_idf=char_idf,
            dense_mean=mean,
            dense_std=std,
        )
