"""Pure deduplication helpers: canonical URLs, content hashes and near-duplicate signatures.

SPEC §5: an article is the same across feeds by canonical URL (tracking parameters
removed), an updated entry is noticed by a change of its content hash, and
near-duplicate copies of one story (syndicated wire copy, rewrites with another
headline) join one story through MinHash signatures and LSH bands.

Everything here is deterministic across processes, runs and machines: no
Python ``hash()``, no RNG state, constants derived from fixed seeds. No I/O.

Near-duplicate scheme
---------------------
``story_text`` builds the text a story is compared on: the *lead*, the first
``LEAD_WORDS`` words of the body (else of the summary, with the title when short),
so a copy with another headline, a trimmed end, or only a summary in its feed
still looks like the full copy.

``signature`` takes the folded word tokens of ``monitor.match.text.tokenize`` (case,
accents, Turkic i), forms shingles of ``SHINGLE_WORDS`` words, hashes each to 64 bits
and keeps, for each of ``NUM_PERM`` seeded hash functions, the minimum
(top 32 bits). The share of equal positions of two signatures estimates the
Jaccard similarity of their shingle sets (``similarity``; standard error
``sqrt(J(1-J)/64)``, about 0.05 at J = 0.8).

``band_keys`` cuts a signature into ``NUM_BANDS`` bands of ``ROWS_PER_BAND`` rows and
hashes each to a 64-bit bucket key; two signatures share a bucket in some band with probability
``1 - (1 - J**4)**16``: 99.98% at J = 0.8, 98.8% at 0.7, 64% at 0.5, 12% at
0.3, 2.5% at 0.2. Bands only nominate candidates; the caller confirms one with
``similarity(a, b) >= NEAR_DUPLICATE``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import struct
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import urlsplit

import numpy as np

from monitor.match.text import fold_token, token_pattern

__all__ = [
    "LEAD_WORDS",
    "MIN_LEAD_WORDS",
    "NEAR_DUPLICATE",
    "NUM_BANDS",
    "NUM_PERM",
    "ROWS_PER_BAND",
    "SHINGLE_WORDS",
    "TRACKING_PARAMS",
    "TRACKING_PREFIXES",
    "band_keys",
    "bands",
    "canonical_url",
    "content_hash",
    "is_empty",
    "pack",
    "signature",
    "signatures",
    "similarity",
    "story_signature",
    "story_signatures",
    "Tokens",
    "story_text",
    "unpack",
]

# --------------------------------------------------------------------------- canonical URLs

# Query parameters that only say how a reader got to the page, never which page it is.
# Names are compared case-insensitively after percent-decoding.
TRACKING_PREFIXES: tuple[str, ...] = (
    "utm_",          # Google Analytics campaign tags: utm_source, utm_medium, utm_campaign, ...
)
TRACKING_PARAMS: frozenset[str] = frozenset({
    # ad-click identifiers
    "fbclid",        # Facebook
    "gclid", "gclsrc", "dclid", "gbraid", "wbraid",  # Google Ads / DoubleClick
    "msclkid",       # Microsoft Advertising
    "yclid",         # Yandex
    "twclid",        # X/Twitter ads
    "ttclid",        # TikTok ads
    "li_fat_id",     # LinkedIn
    "igshid", "igsh",  # Instagram share
    # e-mail and marketing automation
    "mc_cid", "mc_eid",  # Mailchimp
    "_hsenc", "_hsmi", "__hstc", "__hssc", "__hsfp", "hsctatracking",  # HubSpot
    "mkt_tok",       # Marketo
    "vero_id", "vero_conv",  # Vero
    "oly_anon_id", "oly_enc_id",  # Omeda
    "rb_clickid", "wickedid", "s_cid",
    # analytics cross-domain linkers
    "_ga", "_gl",
    # publishers' and aggregators' share/campaign tags
    "ref_src", "ref_url",  # Twitter embeds
    "cmpid", "cmp",  # campaign ids (e.g. CMP=share_btn_tw)
    "ocid",          # Microsoft Start / MSN
    "ncid",          # Yahoo and others
    "xtor",          # AT Internet (common in French-language press feeds)
    "at_medium", "at_campaign",  # AT Internet / Piano
    "ns_mchannel", "ns_source", "ns_campaign", "ns_linkname", "ns_fee",  # comScore
    "smid", "smtyp",  # share tags (e.g. New York Times)
    "sr_share",
})

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HEX = "0123456789ABCDEF"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters left as they are in a path / in a query piece: unreserved, sub-delims, ":" and "@"
# (RFC 3986 §3.3, §3.4). Anything else (spaces, quotes, non-ASCII, ...) is percent-encoded.
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
_QUERY_SAFE = _PATH_SAFE | frozenset("?")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


def _all_of(chars: frozenset[str]) -> re.Pattern[str]:
    return re.compile(f"[{''.join(map(re.escape, sorted(chars)))}]*")


# Parts made only of safe characters: none of them is "%", so `_normalise_escapes` would
# append each as it is. One C-level fullmatch instead of that loop for typical URLs.
_PLAIN = {_PATH_SAFE: _all_of(_PATH_SAFE), _QUERY_SAFE: _all_of(_QUERY_SAFE)}


def _normalise_escapes(part: str, safe: frozenset[str]) -> str:
    """Percent-encoding normalised where it cannot change meaning (RFC 3986 §6.2.2).

    Escapes of unreserved characters are decoded ("%7E" -> "~"), other escapes are
    upper-cased ("%2f" -> "%2F", kept escaped), a stray "%" becomes "%25", and
    characters that must be escaped are (UTF-8).

    A part of safe characters only (no "%" among them) is returned as it is: the loop
    below would copy it character by character.
    """
    if _PLAIN[safe].fullmatch(part):
        return part
    out: list[str] = []
    i, n = 0, len(part)
    while i < n:
        c = part[i]
        if c == "%":
            m = _PERCENT.match(part, i)
            if m:
                ch = chr(int(m.group(1), 16))
                out.append(ch if ch in _UNRESERVED else "%" + m.group(1).upper())
                i += 3
                continue
            out.append("%25")
        elif c in safe:
            out.append(c)
        else:
            out.extend(f"%{_HEX[b >> 4]}{_HEX[b & 15]}" for b in c.encode("utf-8", "surrogatepass"))
        i += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 for an absolute path: "/a/./b/../c" -> "/a/c"."""
    if "." not in path:
        return path
    segments = path.split("/")
    out: list[str] = []
    for seg in segments[1:]:
        if seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/" + "/".join(out)


def _idna_host(host: str) -> str:
    if host.isascii():
        return host
    try:
        import idna  # IDNA 2008 + UTS 46, as browsers do; an httpx dependency

        return idna.encode(host, uts46=True).decode("ascii")
    except Exception:
        return host.encode("idna").decode("ascii")  # IDNA 2003 from the standard library


def _is_tracking(piece: str) -> bool:
    name = piece.partition("=")[0]
    if "%" in name:  # else there is nothing to decode
        name = _PERCENT.sub(lambda m: chr(int(m.group(1), 16)), name)
    name = name.lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """The URL one article has whichever feed or share button it came through.

    For http(s) URLs: scheme and host lower-cased, IDN hosts in punycode, a trailing
    dot and default ports dropped, userinfo kept, dot segments resolved, an empty
    path made "/", percent-encoding normalised where safe, the fragment dropped
    (except a "#!" hash-bang route, which names the page), tracking parameters
    (``TRACKING_PARAMS``, ``TRACKING_PREFIXES``) and empty pieces removed from the
    query with the rest kept in order, an empty query dropped.

    Never raises: anything else (other schemes, relative or unparsable URLs) is
    returned stripped of surrounding whitespace.
    """
    if not isinstance(url, str):
        return ""
    stripped = url.strip()
    try:
        return _canonical(stripped)
    except Exception:
        return stripped


def _canonical(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        return url
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return url
    port = parts.port  # ValueError on junk such as ":80a" or ":99999"
    host = f"[{host}]" if ":" in host else _idna_host(host)  # IPv6 literal, else a name
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        netloc = f"{userinfo}@{netloc}"
    path = _remove_dot_segments(_normalise_escapes(parts.path, _PATH_SAFE)) if parts.path else "/"
    if not path.startswith("/"):
        path = "/" + path
    pieces = [p for p in parts.query.split("&") if p and p != "=" and not _is_tracking(p)]
    query = "&".join(_normalise_escapes(p, _QUERY_SAFE) for p in pieces)
    fragment = parts.fragment if parts.fragment.startswith("!") else ""
    result = f"{scheme}://{netloc}{path}"
    if query:
        result += "?" + query
    if fragment:
        result += "#" + _normalise_escapes(fragment, _QUERY_SAFE)
    return result


# --------------------------------------------------------------------------- content hash

# Soft hyphen, zero-width space/non-joiner/joiner, word joiner, BOM. (A regex, not
# str.translate: translate with a mapping costs ~80 ns per character on non-ASCII text.)
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")


def _normal_text(text: str) -> str:
    r"""`text` NFC-normalised, without ``_INVISIBLE`` characters, its whitespace runs made one
    space and stripped: ``" ".join(_INVISIBLE.sub("", nfc).split())``.

    Fast path, exact: feed text comes from ``html_to_text`` as single-spaced paragraphs joined
    by blank lines, already in that form but for the "\n\n". Say `flat` is the text with each
    "\n\n" made a space. If `flat` is printable, has no double space and neither starts nor
    ends with a space, it is the result: no printable character but the space is one
    ``str.split`` splits on, nor one of ``_INVISIBLE`` (``test_printable_text_is_normal``
    checks that over all of Unicode), so the text's whitespace runs are single spaces and
    "\n\n"s between words (two of them side by side would show as a double space in `flat`),
    and collapsing each to one space gives `flat`. ``str.isprintable`` is one C loop where
    the regex, split and join cost ~10 us on a 1,500-character summary.
    """
    text = unicodedata.normalize("NFC", text or "")
    flat = text.replace("\n\n", " ")
    if flat.isprintable() and "  " not in flat and flat[:1] != " " and flat[-1:] != " ":
        return flat
    return " ".join(_INVISIBLE.sub("", text).split())


def content_hash(title: str, summary: str, body: str) -> str:
    """SHA-256 hex of title, summary and body, NFC-normalised with whitespace collapsed.

    Re-serialisation noise (line breaks, indentation, non-breaking or repeated
    spaces, soft hyphens, zero-width characters, composed vs decomposed accents)
    keeps the hash; any edit of the words, including case and punctuation, changes it.
    """
    data = "\x1f".join(_normal_text(t) for t in (title, summary, body))
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


# --------------------------------------------------------------------------- MinHash + LSH

NUM_PERM = 64
"""Hash functions per signature: 64 x 32-bit values, 256 bytes as stored (``pack``)."""

SIGNATURE_BYTES = 4 * NUM_PERM

NUM_BANDS = 16
ROWS_PER_BAND = 4
"""16 bands x 4 rows: LSH threshold about (1/16)**(1/4) = 0.5, so copies at J >= 0.7 are
found almost surely while unrelated stories (J < 0.2) rarely share a bucket."""

SHINGLE_WORDS = 2
"""Word bigrams. Each changed word breaks ``SHINGLE_WORDS`` shingles, so short wire copy
with a few edits stays above 0.8 with bigrams where trigrams drop below it; unrelated
stories about the same people and places share few bigrams (see tests for measurements).
A text shorter than this is one shingle of all its words."""

LEAD_WORDS = 40
"""Words of lead in ``story_text``: about one lead paragraph (wire leads run 30-45 words).
Copies differ mostly after it (trimmed, extra paragraphs, boilerplate), and a feed that
carries only the lead paragraph as summary gives the same 40 words as a full-text feed.
A summary truncated to 30 words against the 40-word lead is still J ~ 0.74 (a band candidate,
below ``NEAR_DUPLICATE``); with 80 words a 45-word summary-only copy measured only 0.56."""

MIN_LEAD_WORDS = 20
"""A body shorter than this is a teaser, not a lead; a lead shorter than this gets the title."""

NEAR_DUPLICATE = 0.8
"""Suggested ``similarity`` at or above which a candidate from ``bands`` is the same story."""

_MASK64 = (1 << 64) - 1
_EMPTY = 0xFFFFFFFF  # every position of an empty text's signature: never matches anything


def _splitmix64(seed: int, count: int) -> list[int]:
    out = []
    for _ in range(count):
        seed = (seed + 0x9E3779B97F4A7C15) & _MASK64
        z = seed
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        out.append(z ^ (z >> 31))
    return out


_SEED = 0x70726573736D6F6E  # "pressmon"
_PERM_SEEDS = np.array(_splitmix64(_SEED, NUM_PERM), dtype=np.uint64)
_PAIR_MUL = np.uint64(0x9E3779B97F4A7C15 | 1)
_BAND_SEEDS = np.array(_splitmix64(_SEED ^ 0xBA4D, NUM_BANDS), dtype=np.uint64)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_S32 = np.uint64(32)


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place on a uint64 array (wrapping arithmetic)."""
    x ^= x >> _S33
    x *= _M1
    x ^= x >> _S33
    x *= _M2
    x ^= x >> _S33
    return x


@lru_cache(maxsize=1 << 17)
def _word_hash(word: str) -> int:
    digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8,
                             person=b"pressmon-mh-v1").digest()
    return int.from_bytes(digest, "little")


def _words(text: str, limit: int | None = None) -> list[str]:
    """The folded word tokens of `text`: ``[t.folded for t in tokenize(text)]``, without
    offsets; only the first `limit` when given."""
    raw = (m.group() for m in token_pattern(text).finditer(text))
    words = (w for w in map(fold_token, raw) if w)
    return list(words if limit is None else itertools.islice(words, limit))


_M1_INT, _M2_INT, _PAIR_MUL_INT = int(_M1), int(_M2), int(_PAIR_MUL)
_KEYS = np.dtype("<u8")


def _fmix64_int(x: int) -> int:
    """``_fmix64`` of one value < 2**64, in Python ints."""
    x ^= x >> 33
    x = (x * _M1_INT) & _MASK64
    x ^= x >> 33
    x = (x * _M2_INT) & _MASK64
    return x ^ (x >> 33)


@lru_cache(maxsize=1 << 17)
def _raw_word_key(raw: str) -> bytes:
    """What a raw token brings to a signature: the hash ``w`` of its folded word and
    ``fmix(w) * C mod 2**64``, the first step of the shingle hashes it starts, as two
    little-endian uint64 (16 bytes); nothing (b"") when it folds to nothing.

    A text's keys joined are its words' ``(n, 2)`` array in one ``np.frombuffer``, and tokens
    that fold to nothing drop out on their own.
    """
    word = fold_token(raw)
    if not word:
        return b""
    w = _word_hash(word)
    return struct.pack("<QQ", w, (_fmix64_int(w) * _PAIR_MUL_INT) & _MASK64)


def _slide(keys: np.ndarray, k: int) -> np.ndarray:
    """The hashes of the shingles of `k` words starting at each position of the word keys
    `keys` (``n - k + 1`` of them, ``k <= n``; uint64)."""
    words, first_steps = keys[:, 0], keys[:, 1]
    n = len(words)
    if k <= 1:
        h = words.astype(np.uint64)  # a writable copy
    else:
        # h = fmix(...fmix(fmix(w0) * C + w1) * C + w2 ...): order-sensitive, wraps mod 2**64;
        # each word's fmix(w) * C comes with its key.
        h = first_steps[: n - k + 1] + words[1 : n - k + 2]
        for j in range(2, k):
            h = _fmix64(h)
            h *= _PAIR_MUL
            h += words[j : n - k + 1 + j]
    return _fmix64(h)


def _minhash(shingles: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The MinHash rows of texts whose shingles lie one text after another in `shingles`,
    text i's from ``starts[i]`` (each text has at least one): ``(len(starts), NUM_PERM)``, the
    column minima of the top 32 bits of fmix(shingle ^ seed) over each text's rows.

    ``_fmix64`` written out but for its last step, ``x ^= x >> 33``: that leaves the top 32
    bits as they are (``x >> 33 < 2**31``). And the top bits of a column's minimum are the
    minimum of its top bits (``x >> 32`` is monotonic), so only the minima are shifted. Both
    exact; three passes over the ``(n, 64)`` array fewer.
    """
    x = shingles[:, None] ^ _PERM_SEEDS[None, :]
    t = x >> _S33
    x ^= t
    x *= _M1
    np.right_shift(x, _S33, out=t)
    x ^= t
    x *= _M2
    return np.minimum.reduceat(x, starts, axis=0) >> _S32


def signature(text: str) -> tuple[int, ...]:
    """MinHash signature of the folded word shingles of `text`: ``NUM_PERM`` ints < 2**32.

    An empty text (no word tokens) has a signature that matches nothing and has no bands.
    """
    return signatures([token_pattern(text).findall(text)])[0]


def signatures(texts: Sequence[Sequence[str]]) -> list[tuple[int, ...]]:
    """``signature`` of each text given as its raw tokens (``token_pattern(t).findall(t)``),
    computed together: the array work of a poll's entries in one pass instead of one pass
    each (per 40-word lead ~40 -> ~24 us).

    The texts' word keys are joined and their shingles slid over the whole; a shingle that
    would span two texts is dropped. A text of fewer than ``SHINGLE_WORDS`` words is one
    shingle of all of them, done on its own. (Tokens that fold to nothing bring no key.)
    """
    keys = [b"".join(map(_raw_word_key, raw)) for raw in texts]
    counts = np.fromiter((len(b) >> 4 for b in keys), dtype=np.intp, count=len(keys))
    joined = np.frombuffer(b"".join(keys), dtype=_KEYS).reshape(-1, 2)
    starts = np.cumsum(counts) - counts      # text i's first word in `joined`
    k = SHINGLE_WORDS
    # Shingles of each text: n - k + 1, or one for a short text that has any word.
    per = np.where(counts >= k, counts - k + 1, np.minimum(counts, 1))
    ends = np.cumsum(per)
    firsts = ends - per
    shingles = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint64)
    full = counts >= k
    if full.any():
        slid = _slide(joined, k)
        offsets = np.repeat((starts - firsts)[full], per[full])
        at = np.repeat(firsts[full], per[full]) + _ranks(per[full])
        shingles[at] = slid[at + offsets]
    for i in np.flatnonzero(~full & (counts > 0)).tolist():
        n = int(counts[i])
        shingles[firsts[i]] = _slide(joined[starts[i]:starts[i] + n], n)[0]
    found = per > 0
    rows = iter(_minhash(shingles, firsts[found]).tolist() if found.any() else ())
    empty = (_EMPTY,) * NUM_PERM
    return [tuple(next(rows)) if has else empty for has in found.tolist()]


def pack(signatures: Sequence[Sequence[int]]) -> list[bytes]:
    """Signatures as they are stored (``stories.signature``) and sent between processes:
    ``NUM_PERM`` little-endian 32-bit values each, ``SIGNATURE_BYTES`` bytes (a JSON list
    of the same numbers takes ~750 characters and ~7 µs to write or read; a poll's packed
    signatures are read in one ``numpy.frombuffer``). A signature of another length
    (another scheme) packs to another length, which nothing matches."""
    if all(len(s) == NUM_PERM for s in signatures):
        data = np.asarray(signatures, dtype="<u4").tobytes()
        return [data[i:i + SIGNATURE_BYTES] for i in range(0, len(data), SIGNATURE_BYTES)]
    return [np.asarray(s, dtype="<u4").tobytes() for s in signatures]


def unpack(data: bytes) -> tuple[int, ...]:
    """The values of a packed signature (``pack``)."""
    return tuple(np.frombuffer(data, dtype="<u4").tolist())


def _ranks(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ..., size - 1 for each size, one after another: ``[2, 3] -> [0, 1, 0, 1, 2]``."""
    return np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _is_empty(sig: Sequence[int]) -> bool:
    return all(v == _EMPTY for v in sig)


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of two signatures (share of equal positions), 0.0-1.0.

    Empty-text signatures, and signatures of different lengths (another scheme), give 0.0.
    """
    if len(a) != len(b) or not a or _is_empty(a) or _is_empty(b):
        return 0.0
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def band_keys(signatures: np.ndarray) -> np.ndarray:
    """LSH bucket keys of many signatures at once: ``(N, NUM_PERM)`` ints -> ``(N, NUM_BANDS)``
    uint64, each band's ``ROWS_PER_BAND`` values hashed with a seed of its own (so equal
    values in different bands never share a key).

    Signatures sharing a key are near-duplicate candidates (``StoryIndex``). Keys live only
    in memory, rebuilt from the stored signatures, so this scheme can change freely; the
    caller drops the rows of empty-text signatures (``is_empty``).
    """
    rows = np.asarray(signatures, dtype=np.uint64).reshape(-1, NUM_BANDS, ROWS_PER_BAND)
    key = np.broadcast_to(_BAND_SEEDS, rows.shape[:2]).copy()
    for r in range(ROWS_PER_BAND):
        key ^= rows[:, :, r]
        key = _fmix64(key)
        key *= _PAIR_MUL
    return _fmix64(key)


def is_empty(signatures: np.ndarray) -> np.ndarray:
    """Which rows of an ``(N, NUM_PERM)`` array are empty-text signatures (they match nothing)."""
    return (np.asarray(signatures) == _EMPTY).all(axis=1)


def bands(sig: Sequence[int]) -> list[int]:
    """The LSH bucket keys of one signature, band by band (``band_keys``); none for an empty
    text's signature or one of another scheme."""
    if len(sig) != NUM_PERM or _is_empty(sig):
        return []
    return band_keys(np.array([sig], dtype=np.uint64))[0].tolist()


_START_CHARS = 1024
_HEAD_TOKENS = LEAD_WORDS + 2


def _normal_start(text: str) -> tuple[str, list[str]]:
    """``_normal_text(text)``, or as much of its start as holds ``LEAD_WORDS + 2`` word tokens;
    with its ``token_pattern`` split after that many tokens at most (``_lead`` reads them).

    ``story_text`` looks at no more than ``LEAD_WORDS + 1`` words of a summary or body, and
    normalising a long body whole is most of its cost. Normalisation is local (NFC composes
    a character with the marks that follow it, whitespace collapses where it is), so a
    normalised start agrees with the whole text's up to its last word, which may be cut: the
    words before it are whole and the same.
    """
    size = _START_CHARS
    while size < len(text):
        head = _normal_text(text[:size])
        parts = token_pattern(head).split(head, _HEAD_TOKENS)
        if len(parts) > 2 * _HEAD_TOKENS:  # [separator, token] * _HEAD_TOKENS + [rest]
            return head, parts
        size *= 4
    text = _normal_text(text)
    return text, token_pattern(text).split(text, _HEAD_TOKENS)


class _Lead(NamedTuple):
    """What ``story_text`` reads of a normalised summary, body, or both."""

    text: str
    words: list[str]      # _words(text, LEAD_WORDS + 1)
    capped: str           # text cut after its LEAD_WORDS-th token (whole when it has fewer)
    capped_raw: list[str]  # the raw tokens of `capped`
    capped_words: int     # len(_words(capped))


def _lead(text: str, parts: list[str]) -> _Lead:
    """The ``_Lead`` of a normalised `text` from ``token_pattern(text).split(text, limit)``,
    ``limit > LEAD_WORDS``: one pass over its first tokens, where ``_words`` and cutting the
    text took four (count, words, cut, the cut text's words).

    `parts` are separators and raw tokens alternately (then the rest), which joined give
    `text`, so the first ``2 * LEAD_WORDS`` end where the ``LEAD_WORDS``-th token ends. A
    token is a maximal run of token characters (whichever pattern ``token_pattern`` picks
    finds the same), so the text cut there has exactly the first ``LEAD_WORDS`` tokens:
    ``capped_raw`` and ``capped_words`` follow without tokenising it again.
    """
    raw = parts[1::2]
    folded = list(map(fold_token, raw))
    words = [w for w in folded if w]
    if len(words) <= LEAD_WORDS < len(raw):  # tokens that fold to nothing: read them all
        parts = token_pattern(text).split(text)
        raw = parts[1::2]
        folded = list(map(fold_token, raw))
        words = [w for w in folded if w]
    if len(raw) < LEAD_WORDS:  # fewer than `limit`: these are all the tokens
        return _Lead(text, words, text, raw, len(words))
    capped = text[: sum(map(len, parts[: 2 * LEAD_WORDS]))]
    return _Lead(text, words[: LEAD_WORDS + 1], capped, raw[:LEAD_WORDS],
                 sum(map(bool, folded[:LEAD_WORDS])))


def story_text(title: str, summary: str, body: str) -> str:
    """The text a story's signature is computed from: the lead, else the title and summary.

    With a body of at least ``MIN_LEAD_WORDS`` words, its first ``LEAD_WORDS`` words;
    the summary is then either the same lead paragraph or the outlet's own blurb, and
    the headline is the part of a copy outlets rewrite most, so neither is included.
    Otherwise the summary followed by the short body (the summary skipped when the
    body begins with it), capped the same way, and when that is still shorter than
    ``MIN_LEAD_WORDS`` words the title goes first so short items keep enough words.
    Whitespace is normalised; the result is empty when all three are.
    """
    return _story(title, summary, body)[0]


def story_signature(title: str, summary: str, body: str) -> tuple[int, ...]:
    """``signature(story_text(title, summary, body))``, from the tokens ``story_text`` read
    instead of tokenising its text again."""
    return story_signatures([(title, summary, body)])[0]


Tokens = tuple[list[str], list[str], list[str]]
"""The raw tokens of a story's title, summary and body (``token_pattern(t).findall(t)`` of
each text as it is), as a matcher that has read them has them (``_FieldIndex.raw_tokens``)."""


def story_signatures(stories: Sequence[tuple[str, str, str]],
                     tokens: Sequence[Tokens | None] | None = None) -> list[tuple[int, ...]]:
    """``story_signature`` of each (title, summary, body), computed together (``signatures``);
    with the texts' ``tokens`` where known, read from them when that is exact
    (``_story_tokens``) instead of tokenising the texts again."""
    raws = []
    for i, (title, summary, body) in enumerate(stories):
        known = tokens[i] if tokens is not None else None
        raw = _story_tokens(title, summary, body, known) if known is not None else None
        raws.append(raw if raw is not None else _story(title, summary, body)[1])
    return signatures(raws)


def _is_normal(text: str) -> bool:
    """Whether `text` has the raw tokens of ``_normal_text(text)``: it is NFC and has no
    ``_INVISIBLE`` character, so normalising only turns whitespace runs (never part of a token)
    into single spaces."""
    return unicodedata.is_normalized("NFC", text) and _INVISIBLE.search(text) is None


def _lead_words(text: str, raw: list[str]) -> list[str] | None:
    """``_lead(*_normal_start(text)).words`` from the raw tokens of `text` itself; None when
    that might differ: `text` is not normal, or one of the tokens ``_lead`` reads folds to
    nothing (it then reads on, up to where a normalised start may cut a token)."""
    if not _is_normal(text):
        return None
    words = list(map(fold_token, raw[:_HEAD_TOKENS]))
    return None if "" in words else words[: LEAD_WORDS + 1]


def _story_tokens(title: str, summary: str, body: str, tokens: Tokens) -> list[str] | None:
    """``_story(title, summary, body)[1]`` from the texts' own raw tokens, or None when it
    might not be exact (then ``_story`` reads the texts).

    Where a text is normal (``_is_normal``), its normalised start has its first tokens, the
    last of them maybe cut; ``_lead`` reads no further than ``LEAD_WORDS + 1`` words unless
    tokens folding to nothing make it read on, which sends this case to ``_story``. So a
    lead's words are the first folded tokens, its capped tokens the first ``LEAD_WORDS``, and
    a summary and body read as one text are the summary's tokens then the body's.
    """
    title_raw, summary_raw, body_raw = tokens
    body_words = _lead_words(body, body_raw)
    if body_words is None:
        return None
    if len(body_words) >= MIN_LEAD_WORDS:
        return body_raw[:LEAD_WORDS]
    summary_words = _lead_words(summary, summary_raw)
    if summary_words is None:
        return None
    common = min(len(body_words), len(summary_words))
    if body_words[:common] == summary_words[:common]:  # one is the start of the other
        lead = body_raw if len(body_words) > len(summary_words) else summary_raw
    else:
        lead = summary_raw[:LEAD_WORDS] + body_raw[:LEAD_WORDS]
    lead = lead[:LEAD_WORDS]
    if len(lead) < MIN_LEAD_WORDS:   # no token of the lead folds to nothing: its words
        if not _is_normal(title):
            return None
        return title_raw + lead
    return lead


def _story(title: str, summary: str, body: str) -> tuple[str, list[str]]:
    """``story_text`` and its raw tokens."""
    body_lead = _lead(*_normal_start(body or ""))
    if len(body_lead.words) >= MIN_LEAD_WORDS:
        return body_lead.capped, body_lead.capped_raw
    summary_lead = _lead(*_normal_start(summary or ""))
    body_words, summary_words = body_lead.words, summary_lead.words
    common = min(len(body_words), len(summary_words))
    if body_words[:common] == summary_words[:common]:  # one is the start of the other
        lead = body_lead if len(body_words) > len(summary_words) else summary_lead
    else:
        text = f"{summary_lead.text} {body_lead.text}"
        lead = _lead(text, token_pattern(text).split(text, _HEAD_TOKENS))
    if lead.capped_words < MIN_LEAD_WORDS:
        # "\n" is no token character and strip() takes only whitespace: the title's tokens,
        # then the lead's.
        title = _normal_text(title or "")
        raw = token_pattern(title).findall(title) + lead.capped_raw
        return f"{title}\n{lead.capped}".strip(), raw
    return lead.capped, lead.capped_raw
