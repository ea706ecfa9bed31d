"""The validation plan's launch order: the longest fold runs first, so it never runs alone at the end."""

from __future__ import annotations

from atft.validate.plan import FoldRun, launch_order


def test_the_newest_fold_starts_first_and_seeds_keep_their_order() -> None:
    runs = [FoldRun(f, str(2010 + f), seed, "", "") for f in range(3) for seed in (0, 1)]
    assert [(r.fold, r.seed) for r in launch_order(runs)] == [(2, 0), (2, 1), (1, 0), (1, 1), (0, 0), (0, 1)]
    assert runs[0].name == "fold-00-seed-0", "a sorted copy: the plan itself stays oldest first"
