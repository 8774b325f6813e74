"""Version comparison per the UAPI group's version format specification (systemd-analyze compare-versions)."""

from __future__ import annotations

import functools

from imagebuild.config.errors import ValueProblem

_SEPARATORS = "~-^."


def _valid(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in _SEPARATORS)


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as a is older than, equal to or newer than b."""
    if not a or not b:
        return _sign((a > b) - (a < b))

    i = j = 0
    while True:
        # Characters outside the version alphabet only separate segments.
        while i < len(a) and not _valid(a[i]):
            i += 1
        while j < len(b) and not _valid(b[j]):
            j += 1

        ca = a[i] if i < len(a) else ""
        cb = b[j] if j < len(b) else ""

        # "~" marks a pre-release: it sorts before everything, even the end of the string.
        if ca == "~" or cb == "~":
            if (ca == "~") != (cb == "~"):
                return -1 if ca == "~" else 1
            i += 1
            j += 1
            ca = a[i] if i < len(a) else ""
            cb = b[j] if j < len(b) else ""

        # The string that ends first is older, unless the other one continues with "~" (handled above).
        if not ca or not cb:
            rest_a, rest_b = a[i:], b[j:]
            return _sign((rest_a > rest_b) - (rest_a < rest_b))

        for sep in "-^.":
            if ca == sep or cb == sep:
                if (ca == sep) != (cb == sep):
                    return -1 if ca == sep else 1
                i += 1
                j += 1
                ca = a[i] if i < len(a) else ""
                cb = b[j] if j < len(b) else ""

        if ca.isdigit() or cb.isdigit():
            ea, eb = i, j
            while ea < len(a) and a[ea].isascii() and a[ea].isdigit():
                ea += 1
            while eb < len(b) and b[eb].isascii() and b[eb].isdigit():
                eb += 1
            # A numeric segment is newer than an alphabetic (or missing) one.
            if (ea > i) != (eb > j):
                return 1 if ea > i else -1
            na, nb = a[i:ea].lstrip("0"), b[j:eb].lstrip("0")
            if len(na) != len(nb):
                return 1 if len(na) > len(nb) else -1
            if na != nb:
                return 1 if na > nb else -1
        else:
            ea, eb = i, j
            while ea < len(a) and a[ea].isascii() and a[ea].isalpha():
                ea += 1
            while eb < len(b) and b[eb].isascii() and b[eb].isalpha():
                eb += 1
            sa, sb = a[i:ea], b[j:eb]
            n = min(len(sa), len(sb))
            if sa[:n] != sb[:n]:
                return 1 if sa[:n] > sb[:n] else -1
            if len(sa) != len(sb):
                return 1 if len(sa) > len(sb) else -1
            if ea == i and eb == j:
                # Neither a digit nor a letter: a separator the branches above did not consume.
                i += 1
                j += 1
                continue
        i, j = ea, eb


@functools.total_ordering
class GenericVersion:
    """A version string ordered by compare_versions; str() gives it back unchanged."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"GenericVersion({self.text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GenericVersion):
            return NotImplemented
        return compare_versions(self.text, other.text) == 0

    def __lt__(self, other: GenericVersion) -> bool:
        return compare_versions(self.text, other.text) < 0

    def __hash__(self) -> int:
        return hash(self.text)


_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")


def parse_version_condition(condition: str) -> tuple[str, str]:
    """Split a condition like ">=254" into its operator and version ("1.2" alone means "==1.2")."""
    for op in _OPERATORS:
        if condition.startswith(op):
            wanted = condition[len(op):]
            if not wanted:
                raise ValueProblem(f"{op!r} needs a version after it", "e.g. >=254, <1.2, !=3, or 1.2 for equality")
            return op, wanted
    return "==", condition


def version_matches(condition: str, actual: str) -> bool:
    """True if actual satisfies a condition like ">=254", "!=1.2" or "1.2" (equality)."""
    op, wanted = parse_version_condition(condition)
    c = compare_versions(actual, wanted)
    return {
        "==": c == 0,
        "!=": c != 0,
        "<=": c <= 0,
        ">=": c >= 0,
        "<": c < 0,
        ">": c > 0,
    }[op]
