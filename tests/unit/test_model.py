import numpy as np
import pytest

from video_emotion.config import ModelConfig
from video_emotion.modeling.model import build_model

SIZE = 112  # the default pretrained network's input


def _inputs(n=3, t=6, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (n, t, SIZE, SIZE)).astype("float32")
    mask = np.ones((n, t), "float32")
    mask[:, -2:] = 0
    return frames, mask


def _predict(model, frames, mask):
    return np.asarray(model({"frames": frames, "mask": mask}, training=False))


@pytest.fixture(scope="module")
def attention_model(pretrained):
    return build_model(ModelConfig(lstm_units=8), 6, SIZE, pretrained)


def test_attention_model_outputs_distributions_and_keeps_the_pretrained_cnn_frozen(attention_model):
    frames, mask = _inputs()
    p = _predict(attention_model, frames, mask)
    assert p.shape == (3, 7)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    cnn = attention_model.get_layer("frame_cnn")
    assert not cnn.trainable_weights and cnn.count_params() > 50000


def test_masked_frames_do_not_change_the_output(attention_model):
    frames, mask = _inputs()
    other = frames.copy()
    other[:, -2:] = 255 - other[:, -2:]  # change only the masked (no-face) frames
    np.testing.assert_allclose(_predict(attention_model, frames, mask), _predict(attention_model, other, mask),
                               atol=1e-5)


def test_correction_is_bounded(pretrained):
    import keras

    from video_emotion.modeling.model import EPS

    bound = 0.5
    model = build_model(ModelConfig(lstm_units=8, correction_bound=bound), 6, SIZE, pretrained)
    corr = model.get_layer("correction")
    w, b = corr.get_weights()
    corr.set_weights([w, np.linspace(-50, 50, len(b)).astype(b.dtype)])  # a huge raw correction
    frames, mask = _inputs()
    p = _predict(model, frames, mask)
    pooled = keras.Model(model.inputs, model.get_layer("attention").output[0])
    q = np.asarray(pooled({"frames": frames, "mask": mask}, training=False)) + EPS
    # Each class's log-probability moves by at most `bound` (up to a shared constant).
    shift = np.log(p) - np.log(q)
    lr = shift[:, :, None] - shift[:, None, :]
    assert np.abs(lr).max() <= 2 * bound + 1e-3
    assert np.abs(lr).max() > bound  # and it is really applied


def test_save_and_load_roundtrip(attention_model, tmp_path):
    import keras

    path = tmp_path / "m.keras"
    attention_model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    frames, mask = _inputs(seed=1)
    np.testing.assert_allclose(_predict(attention_model, frames, mask), _predict(loaded, frames, mask), atol=1e-6)


@pytest.mark.parametrize("cfg", [ModelConfig(head="lstm", bidirectional=False, lstm_units=8),
                                 ModelConfig(init="scratch", lstm_units=8),
                                 ModelConfig(fine_tune="partial", lstm_units=8)])
def test_other_designs_build(cfg, pretrained):
    """They build and read; those whose CNN trains (partly fine-tuned, from scratch) have no frozen parts."""
    from video_emotion.modeling.model import frozen_parts

    model = build_model(cfg, 6, SIZE, pretrained)
    frames, mask = _inputs()
    assert _predict(model, frames, mask).shape == (3, 7)
    if cfg.fine_tune == "partial":
        cnn = model.get_layer("frame_cnn").layer
        trainable = [layer for layer in cnn.layers if layer.trainable_weights]
        assert trainable and all(type(layer).__name__ != "BatchNormalization" for layer in trainable)
    if cfg.fine_tune == "partial" or cfg.init == "scratch":
        assert frozen_parts(model, cfg) is None


def test_pretrained_init_needs_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="make assets"):
        build_model(ModelConfig(), 6, SIZE, tmp_path / "none.hdf5")


def test_crop_size_must_match_the_pretrained_network(pretrained, fer_weights):
    with pytest.raises(ValueError, match="image_size=112"):
        build_model(ModelConfig(lstm_units=8), 6, 64, pretrained)
    model = build_model(ModelConfig(init="fer", lstm_units=8), 6, 64, fer_weights)  # the older network still builds
    assert model.get_layer("frame_cnn").layer.name == "fer_cnn"


@pytest.mark.parametrize("cfg", [ModelConfig(lstm_units=8, flip_average=True),
                                 ModelConfig(lstm_units=8, correction_bound=0.0),
                                 ModelConfig(head="lstm", bidirectional=False, lstm_units=8)])
def test_frozen_parts_are_the_model_split_at_the_frame_readings(cfg, pretrained, tmp_path):
    """Training reads each frame once through `frozen_parts`: the head on the features is the model, fitting
    the head fits the model, and the model still saves and loads whole."""
    import keras

    from video_emotion.modeling.model import frozen_parts

    model = build_model(cfg, 4, SIZE, pretrained)  # 4 frames a window (2 with a face): every call reads 12 crops
    features, head = frozen_parts(model, cfg)
    frames, mask = _inputs(t=4)

    def via_parts():  # direct calls: predict() would trace a graph per part for three samples
        return np.asarray(head({"frame_features": np.asarray(features(frames, training=False)), "mask": mask},
                               training=False))

    before = _predict(model, frames, mask)
    np.testing.assert_allclose(via_parts(), before, atol=1e-5)
    head.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    head.fit({"frame_features": np.asarray(features(frames, training=False)), "mask": mask}, np.array([0, 1, 2]),
             epochs=3, verbose=0)
    after = _predict(model, frames, mask)
    assert np.abs(after - before).max() > 1e-4  # the model's own weights moved
    np.testing.assert_allclose(via_parts(), after, atol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(_predict(loaded, frames, mask), after, atol=1e-5)
