import pytest

from video_emotion import labels


def test_canonical_order_is_fer2013():
    assert labels.LABELS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert set(labels.VALENCE) == set(labels.AROUSAL) == set(labels.LABELS)
    assert all(-1 <= v <= 1 for v in labels.VALENCE.values())
    assert all(0 <= a <= 1 for a in labels.AROUSAL.values())


def test_polarity_follows_valence():
    assert labels.polarity(labels.valence_of({"happy": 1.0})) == "positive"
    assert labels.polarity(labels.valence_of({"sad": 0.9, "neutral": 0.1})) == "negative"
    assert labels.polarity(labels.valence_of({"neutral": 1.0})) == "neutral"


def test_translations_cover_every_label_and_reject_unknown_language():
    assert labels.translate("sad", "zh") == "悲伤"
    assert labels.translate("positive", "zh") == "积极"
    assert all(labels.translate(k, "zh") != k for k in labels.LABELS)
    with pytest.raises(ValueError, match="unsupported language"):
        labels.translate("sad", "fr")
    with pytest.raises(ValueError, match="unknown label"):
        labels.index_of("joy")
