import numpy as np

from video_emotion.modeling.metrics import classification_metrics


def test_classification_metrics_by_hand():
    labels = ["a", "b", "c"]
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 1, 2, 0])
    m = classification_metrics(y_true, y_pred, labels)
    assert m["accuracy"] == 6 / 8
    # recalls: a 3/4, b 2/2, c 1/2 -> UAR 0.75
    assert abs(m["uar"] - 0.75) < 1e-9
    f1_a = 2 * 0.75 * 0.75 / 1.5
    f1_b = 2 * (2 / 3) * 1 / (2 / 3 + 1)
    f1_c = 2 * 1 * 0.5 / 1.5
    assert abs(m["macro_f1"] - (f1_a + f1_b + f1_c) / 3) < 1e-9
    assert m["confusion_matrix"] == [[3, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["c"]["support"] == 2


def test_absent_classes_do_not_drag_macro_scores():
    m = classification_metrics(np.array([0, 1]), np.array([0, 1]), ["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and m["uar"] == 1.0
