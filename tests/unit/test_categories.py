"""Category codes on their own: new categories get slots in signal order, absent ones give them
up, and the evidence reads the codes kept."""

from __future__ import annotations

import numpy as np

from detector.core.monitors.categories import MAX_NEW_CATEGORIES, CategoryCodes
from detector.core.monitors.reference import CategoricalReference

KEPT = 8


def codes_for(sample: list[str]) -> CategoryCodes:
    return CategoryCodes(CategoricalReference.fit(sample, max_categories=2), KEPT)


def test_new_categories_are_named_in_signal_order_and_coded_after_other() -> None:
    categories = codes_for(["a"] * 6 + ["b"] * 3 + ["c"])  # 'c' is pooled as other (code 2)
    values = ["a", "new", "c", "newer", "new"]
    codes = categories.codes(values)
    assert codes.tolist() == [0, 2, 2, 2, 2]
    categories.name_new(values, codes)
    assert categories.new_categories == ["new", "c", "newer"]
    assert codes.tolist() == [0, 3, 4, 5, 3]
    assert categories.names() == ["a", "b", "(other)", "new", "c", "newer"]


def test_no_more_than_max_new_categories_are_named() -> None:
    categories = codes_for(["a", "b"])
    values = [f"n{i}" for i in range(MAX_NEW_CATEGORIES + 5)]
    codes = categories.codes(values)
    categories.name_new(values, codes)
    assert len(categories.new_categories) == MAX_NEW_CATEGORIES
    assert (codes[MAX_NEW_CATEGORIES:] == categories.reference.other_code).all()


def test_a_new_category_absent_from_the_kept_codes_gives_up_its_slot() -> None:
    categories = codes_for(["a", "b"])
    values = ["x", "a", "y", "a"]
    codes = categories.codes(values)
    categories.name_new(values, codes)
    categories.begin(0, codes)
    categories.end()
    more = ["a", "b", "y", "a", "b", "a", "b", "a"]  # x is out of the last KEPT values, y is not
    codes = categories.codes(more)
    categories.begin(len(values), codes)
    assert categories.between(4, 11).tolist() == codes.tolist()
    categories.end()
    categories.forget_absent()
    assert categories.new_categories == [None, "y"]
    assert categories.codes(["x", "y"]).tolist() == [2, 4]


def test_the_evidence_reads_only_the_kept_codes() -> None:
    categories = codes_for(["a", "b"])
    first = np.zeros(KEPT + 4, dtype=np.int64)
    categories.begin(0, first)
    categories.end()
    assert len(categories.recent) == KEPT
    categories.begin(KEPT + 4, np.ones(2, dtype=np.int64))
    assert categories.between(0, KEPT + 5).tolist() == [0] * (KEPT - 2) + [1, 1]
