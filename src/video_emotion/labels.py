"""The canonical label set, its affect coordinates and its translations.

Everything that needs label names, order, valence or arousal imports them from here; the order is
the FER-2013 order (a pretrained network with another order, such as face-api.js's, is permuted to it
when it is loaded: `modeling.backbones`).
"""

from __future__ import annotations

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Valence in [-1, 1] and arousal in [0, 1], after the circumplex placements commonly used for the
# basic emotions (Russell 1980; Warriner et al. 2013 norms rounded).
VALENCE: dict[str, float] = {
    "angry": -0.60, "disgust": -0.65, "fear": -0.65, "happy": 0.80,
    "sad": -0.70, "surprise": 0.20, "neutral": 0.0,
}
AROUSAL: dict[str, float] = {
    "angry": 0.85, "disgust": 0.55, "fear": 0.85, "happy": 0.65,
    "sad": 0.30, "surprise": 0.85, "neutral": 0.15,
}

TRANSLATIONS: dict[str, dict[str, str]] = {
    "en": {label: label for label in LABELS},
    "zh": {
        "angry": "愤怒", "disgust": "厌恶", "fear": "恐惧", "happy": "高兴",
        "sad": "悲伤", "surprise": "惊讶", "neutral": "中性",
    },
}
SENTIMENT_TRANSLATIONS: dict[str, dict[str, str]] = {
    "en": {"positive": "positive", "neutral": "neutral", "negative": "negative"},
    "zh": {"positive": "积极", "neutral": "中性", "negative": "消极"},
}

# Valence beyond this magnitude counts as polar sentiment.
SENTIMENT_THRESHOLD = 0.15


def index_of(label: str) -> int:
    """Position of a canonical label; raises ValueError with the allowed set otherwise."""
    try:
        return LABELS.index(label)
    except ValueError:
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}") from None


def polarity(score: float, threshold: float = SENTIMENT_THRESHOLD) -> str:
    """Map a valence-like score in [-1, 1] to positive / neutral / negative."""
    if score > threshold:
        return "positive"
    if score < -threshold:
        return "negative"
    return "neutral"


def valence_of(probabilities: dict[str, float]) -> float:
    """Expected valence under a probability distribution over labels."""
    return float(sum(p * VALENCE[k] for k, p in probabilities.items()))


def arousal_of(probabilities: dict[str, float]) -> float:
    """Expected arousal under a probability distribution over labels."""
    return float(sum(p * AROUSAL[k] for k, p in probabilities.items()))


def translate(label: str, lang: str = "en") -> str:
    """Display name of a label (or sentiment) in a supported language."""
    if lang not in TRANSLATIONS:
        raise ValueError(f"unsupported language {lang!r}; expected one of {', '.join(TRANSLATIONS)}")
    return TRANSLATIONS[lang].get(label) or SENTIMENT_TRANSLATIONS[lang].get(label, label)
