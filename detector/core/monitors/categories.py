"""The category codes of a categorical signal: the reference's categories (`other_code` for the
rest), then up to MAX_NEW_CATEGORIES new categories named for the evidence, slot i as
other_code + 1 + i (the detectors see them as 'other'); and the last `kept` codes, which the
evidence reads."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np

from detector.core.monitors.reference import CategoricalReference

MAX_NEW_CATEGORIES = 16  # categories outside the reference named at a time for the evidence


class CategoryCodes:
    """Codes of one categorical signal's values, learned against its reference."""

    def __init__(self, reference: CategoricalReference, kept: int) -> None:
        """`kept`: how many of the last codes are kept for the evidence."""
        self.reference = reference
        self.kept = kept
        self.index = reference.index()  # category -> code
        self.new_categories: list[str | None] = []  # by slot; None: free
        self.recent = np.empty(0, dtype=np.int16)  # the last `kept` codes
        # (position of the first, codes): the recent codes and those being decided, meanwhile.
        self.in_play: tuple[int, np.ndarray] | None = None

    def restore(self, new_categories: list[str | None], recent: np.ndarray) -> None:
        """Take over the named new categories and the recent codes of a checkpoint."""
        other = self.reference.other_code
        self.new_categories = new_categories
        self.index |= {
            name: other + 1 + slot for slot, name in enumerate(new_categories) if name is not None
        }
        self.recent = recent

    def codes(self, values: Sequence[Any] | np.ndarray) -> np.ndarray:
        """The code of each value (new categories not named are 'other')."""
        other = self.reference.other_code
        return np.fromiter(
            map(self.index.get, values, repeat(other, len(values))),
            dtype=np.int64,
            count=len(values),
        )

    def name_new(self, values: Sequence[Any] | np.ndarray, codes: np.ndarray) -> None:
        """Give new categories (outside the reference) a free slot each, in signal order, and
        their values its code. Only values coded 'other' are looked at, and only while a slot is
        free; without new categories this is one comparison over the codes."""
        other = self.reference.other_code
        free = [slot for slot, name in enumerate(self.new_categories) if name is None]
        free += range(len(self.new_categories), MAX_NEW_CATEGORIES)
        rows = np.flatnonzero(codes == other) if free else codes[:0]
        if not len(rows):
            return
        names = list(map(values.__getitem__, rows.tolist()))
        for name, slot in zip(dict.fromkeys(names), free):
            self.index[name] = other + 1 + slot
            if slot < len(self.new_categories):
                self.new_categories[slot] = name
            else:
                self.new_categories.append(name)
        codes[rows] = np.fromiter(
            map(self.index.get, names, repeat(other, len(names))),
            dtype=np.int64,
            count=len(names),
        )

    def until_forgetting(self, codes: np.ndarray, seen: int) -> int:
        """How many of these values (the first at signal position `seen`) to watch now: all of
        them, unless forgetting absent new categories at a multiple of `kept` values among them
        would change something; then up to that multiple. Without a free slot or without values
        coded 'other', the named slots stay as they are until then, so whether one is absent is
        read off the codes."""
        kept, other = self.kept, self.reference.other_code
        multiple = kept - seen % kept  # index in `codes` of the next multiple
        if len(codes) <= multiple:
            return len(codes)
        named = {
            other + 1 + slot for slot, name in enumerate(self.new_categories) if name is not None
        }
        if len(named) < MAX_NEW_CATEGORIES and (codes == other).any():
            return multiple  # a new category may take a slot before it
        while named and multiple < len(codes):
            window = np.concatenate((self.recent, codes[:multiple]))[-kept:]
            if named - set(np.unique(window[window > other]).tolist()):
                return multiple
            multiple += kept
        return len(codes)

    def forget_absent(self) -> None:
        """Free the slots of new categories absent from the recent codes, so that later new
        categories can be named. Done at positions that are multiples of `kept`, whatever the
        batches; a freed code is then absent from every window the evidence reads."""
        other = self.reference.other_code
        present = set(np.unique(self.recent[self.recent > other]).tolist())
        for slot, name in enumerate(self.new_categories):
            if name is not None and other + 1 + slot not in present:
                del self.index[name]
                self.new_categories[slot] = None

    def begin(self, seen: int, codes: np.ndarray) -> None:
        """Put the codes of values about to be decided (the first at position `seen`) in play,
        after the recent ones."""
        self.in_play = (seen - len(self.recent), np.concatenate((self.recent, codes)))

    def end(self) -> None:
        """The values decided: keep the last `kept` codes."""
        assert self.in_play is not None
        self.recent = self.in_play[1][-self.kept :].astype(np.int16)
        self.in_play = None

    def between(self, first: int, last: int) -> np.ndarray:
        """Codes of the values at positions first..last, of those still kept."""
        assert self.in_play is not None
        start, codes = self.in_play
        first = max(first, start, last + 1 - self.kept)
        return codes[first - start : last - start + 1] if last >= first else codes[:0]

    def names(self) -> list[str]:
        """Names by code: the reference's categories, '(other)', then the new categories named."""
        return [
            *self.reference.categories,
            "(other)",
            *(name or "" for name in self.new_categories),
        ]
