"""``did you mean ...?``: the known key an unknown one is most likely a slip for."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from dockyard.config.tree import KeyPath, dotted


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known key ``name`` is most likely a slip for: a case difference, else difflib's
    closest spelling; None when nothing is close."""
    candidates = list(known)
    for candidate in candidates:
        if candidate.lower() == name.lower():
            return candidate
    matches = difflib.get_close_matches(name.lower(), candidates, n=1)
    return matches[0] if matches else None


def did_you_mean(parent: KeyPath, name: str, known: Iterable[str]) -> str:
    """``; did you mean <key>?`` naming the full key, or '' when no known key is close."""
    match = closest(name, known)
    return f"; did you mean {dotted((*parent, match))}?" if match is not None else ""
