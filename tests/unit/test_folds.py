import pytest

from video_emotion.data.manifest import actor_folds


def test_actor_folds_are_disjoint_balanced_and_deterministic():
    actors = [f"a{i}" for i in range(24)] * 3
    folds = actor_folds(actors, 5, seed=1)
    assert set(folds) == set(actors) and set(folds.values()) == set(range(5))
    sizes = [list(folds.values()).count(k) for k in range(5)]
    assert max(sizes) - min(sizes) <= 1
    assert folds == actor_folds(list(reversed(actors)), 5, seed=1)
    with pytest.raises(ValueError, match="cannot fill"):
        actor_folds(["a", "b"], 3, seed=0)
