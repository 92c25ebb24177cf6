"""Keras model: a per-frame CNN (TimeDistributed) followed by a temporal head. No I/O but weights.

Default design (`head: attention`, `init: pretrained`, `fine_tune: frozen`): the pretrained face network
(`modeling.backbones`: face-api.js's expression network by default) reads every frame; an LSTM over its
features and probabilities scores how much each frame should count; the clip's output is the
attention-weighted mean of the CNN's own per-frame probabilities, optionally shifted by a bounded,
L2-penalised per-class log-prior correction. No layer mixes classes freely, so the model cannot learn to
rename classes on synthetic data and keeps the pretrained network's reading of real faces. With
`flip_average` (off by default) each frame is read as the mean of the network on the face and on its
mirror image, inside the model (a saved model carries it). Without a correction (what the synthetic
corpus trains: `ModelConfig.effective`), a clip of identical frames reads exactly as that one frame
does. The classic head (`head: lstm`, a softmax over LSTM states) and the fine-tuning modes are kept for
real corpora, where renaming is not a risk. `frozen_parts` splits a model whose CNN is frozen at the
per-frame readings, so that training reads each frame once.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers, ops

from video_emotion.config import ModelConfig
from video_emotion.modeling.backbones import N_CLASSES, pretrained_backbone, scratch_backbone
from video_emotion.modeling.inputs import model_inputs  # noqa: F401  (re-exported)

EPS = 1e-6


@keras.saving.register_keras_serializable(package="video_emotion")
class SliceLast(layers.Layer):
    """x[..., start:stop]: splits the per-frame CNN's concatenated (features, probabilities)."""

    def __init__(self, start: int, stop: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, x):
        return x[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@keras.saving.register_keras_serializable(package="video_emotion")
class Mirror(layers.Layer):
    """Frames (B, T, H, W, C) flipped left-right: the mirror image of every frame."""

    def call(self, x):
        return ops.flip(x, axis=-2)


@keras.saving.register_keras_serializable(package="video_emotion")
class MaskedAttentionPool(layers.Layer):
    """Softmax over time of per-frame scores (masked frames get zero weight), applied to values.

    Returns the pooled values and the attention weights, so that serving can show which frames
    drove a window's reading.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True  # masking is explicit (`valid`); an attached Keras mask is consumed

    def compute_mask(self, *args, **kwargs):
        return None

    def call(self, scores, values, valid):
        valid = ops.cast(valid, scores.dtype)
        scores = ops.squeeze(scores, -1) + (1.0 - valid) * -1e9
        weights = ops.softmax(scores, axis=-1) * valid
        weights = weights / (ops.sum(weights, axis=-1, keepdims=True) + EPS)
        pooled = ops.sum(values * ops.expand_dims(weights, -1), axis=1)
        return pooled, weights


@keras.saving.register_keras_serializable(package="video_emotion")
class BoundedLogShift(layers.Layer):
    """softmax(log p + bound * tanh(delta)): a per-class correction that can never exceed `bound`."""

    def __init__(self, bound: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bound = bound

    def call(self, probs, delta):
        return ops.softmax(ops.log(probs + EPS) + self.bound * ops.tanh(delta), axis=-1)

    def get_config(self):
        return {**super().get_config(), "bound": self.bound}


@keras.saving.register_keras_serializable(package="video_emotion")
class MaskedMean(layers.Layer):
    """Mean over unmasked time steps."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, *args, **kwargs):
        return None

    def call(self, x, valid):
        m = ops.expand_dims(ops.cast(valid, x.dtype), -1)
        return ops.sum(x * m, axis=1) / (ops.sum(m, axis=1) + EPS)


def _set_trainable(backbone: keras.Model, mode: str) -> None:
    """frozen: nothing trains; partial: the last residual block and the classifier; full: all.

    BatchNormalization stays frozen (inference statistics) in every mode: re-estimating it from a
    few hundred clips is what breaks a pretrained network's reading of real faces.
    """
    if mode == "frozen":
        backbone.trainable = False
        return
    backbone.trainable = True
    convs = [i for i, layer in enumerate(backbone.layers) if isinstance(layer, layers.Conv2D | layers.SeparableConv2D)]
    first_trainable = convs[-4] if mode == "partial" and len(convs) >= 4 else 0
    for i, layer in enumerate(backbone.layers):
        layer.trainable = i >= first_trainable and not isinstance(layer, layers.BatchNormalization)


def audio_branch(n_mels: int, n_audio_frames: int) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """A small CNN over the log-mel spectrogram -> 7 class logits."""
    audio = keras.Input((n_mels, n_audio_frames), name="audio")
    x = layers.Reshape((n_mels, n_audio_frames, 1))(audio)
    x = layers.Rescaling(1.0 / 5.0, offset=1.0, name="audio_scale")(x)  # log-mel ~[-14, 10] -> ~[-2, 3]
    for filters in (16, 32, 48):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    return audio, layers.Dense(N_CLASSES, name="audio_logits")(x)


@keras.saving.register_keras_serializable(package="video_emotion")
class LateFusion(layers.Layer):
    """softmax(log p_video + has_audio * audio_logits): the voice shifts the face's reading where
    there is a voice, and clips without audio keep the face's reading unchanged."""

    def call(self, probs, logits, has_audio):
        return ops.softmax(ops.log(probs + EPS) + ops.cast(has_audio, logits.dtype) * logits, axis=-1)


@keras.saving.register_keras_serializable(package="video_emotion")
class MaskedSoftmax(layers.Layer):
    """Audio-only output: softmax of the logits, uniform where a clip has no audio."""

    def call(self, logits, has_audio):
        return ops.softmax(ops.cast(has_audio, logits.dtype) * logits, axis=-1)


def build_model(cfg: ModelConfig, n_frames: int, image_size: int, pretrained_path: str | Path | None = None,
                n_mels: int = 64, n_audio_frames: int = 200) -> keras.Model:
    """Inputs (by `cfg.modalities`): `frames` (T, S, S) grey crops and `mask` (T,) 1 where a face
    applies; `audio` (n_mels, frames) log-mel and `has_audio` (1,).

    Output: class probabilities (7,) in the canonical label order.
    """
    mods = list(cfg.modalities)
    if mods == ["audio"]:
        audio, logits = audio_branch(n_mels, n_audio_frames)
        has_audio = keras.Input((1,), name="has_audio")
        probs = MaskedSoftmax(name="emotion")(logits, has_audio)
        return keras.Model({"audio": audio, "has_audio": has_audio}, probs, name="video_emotion")
    video_model = _build_video(cfg, n_frames, image_size, pretrained_path)
    if "audio" not in mods:
        return video_model
    audio, logits = audio_branch(n_mels, n_audio_frames)
    has_audio = keras.Input((1,), name="has_audio")
    probs = LateFusion(name="fused")(video_model.output, logits, has_audio)
    inputs = {**video_model.input, "audio": audio, "has_audio": has_audio}
    return keras.Model(inputs, probs, name="video_emotion")


def _build_video(cfg: ModelConfig, n_frames: int, image_size: int, pretrained_path: str | Path | None) -> keras.Model:
    frames = keras.Input((n_frames, image_size, image_size), name="frames")
    mask = keras.Input((n_frames,), name="mask")
    x = layers.Reshape((n_frames, image_size, image_size, 1))(frames)
    # Every backbone takes grey faces scaled to [-1, 1]; the scaling lives in the model.
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(x)
    if cfg.init == "scratch":
        backbone = scratch_backbone(image_size)
    else:
        if pretrained_path is None:
            raise ValueError(f"model.init={cfg.init} needs the pretrained network's path (paths.pretrained)")
        backbone = pretrained_backbone(pretrained_path)
        size = tuple(backbone.input_shape[1:3])
        if size != (image_size, image_size):
            raise ValueError(f"the pretrained network at {pretrained_path} reads {size[0]}x{size[1]} faces: "
                             f"set preprocess.image_size={size[0]} (it is {image_size})")
    _set_trainable(backbone, cfg.fine_tune)
    cnn = layers.TimeDistributed(backbone, name="frame_cnn")
    feat_probs = cnn(x)
    if cfg.flip_average:  # each frame read as the mean of the network on it and on its mirror image
        feat_probs = layers.Average(name="flip_average")([feat_probs, cnn(Mirror(name="mirror")(x))])
    probs = _apply_head(cfg, _head_layers(cfg, feat_probs.shape[-1]), feat_probs, mask)
    return keras.Model({"frames": frames, "mask": mask}, probs, name="video_emotion")


def _head_layers(cfg: ModelConfig, width: int) -> dict[str, layers.Layer]:
    """The temporal head's layers, by role (`_apply_head` wires them)."""
    rnn = layers.LSTM(cfg.lstm_units, return_sequences=True, name="lstm")
    if cfg.bidirectional:
        rnn = layers.Bidirectional(rnn, name="bilstm")
    out: dict[str, layers.Layer] = {"rnn": rnn, "dropout": layers.Dropout(cfg.dropout, name="head_dropout")}
    if cfg.head == "attention":
        out.update(frame_probs=SliceLast(width - N_CLASSES, width, name="frame_probs"),
                   frame_scores=layers.Dense(1, name="frame_scores"), attention=MaskedAttentionPool(name="attention"))
        if cfg.correction_bound > 0:
            out.update(context=MaskedMean(name="context"),
                       emotion=BoundedLogShift(cfg.correction_bound, name="emotion"),
                       correction=layers.Dense(N_CLASSES, name="correction",
                                               kernel_regularizer=keras.regularizers.l2(cfg.correction_l2),
                                               bias_regularizer=keras.regularizers.l2(cfg.correction_l2)))
        else:
            out["emotion"] = layers.Identity(name="emotion")
    else:
        out.update(context=MaskedMean(name="context"),
                   emotion=layers.Dense(N_CLASSES, activation="softmax", name="emotion"))
    return out


def _apply_head(cfg: ModelConfig, L: dict[str, layers.Layer], feat_probs, mask):
    """Per-frame features and probabilities (T, F + 7) and the face mask (T,) -> clip probabilities."""
    h = L["dropout"](L["rnn"](feat_probs, mask=ops.cast(mask, "bool")))
    if cfg.head != "attention":
        return L["emotion"](L["context"](h, mask))
    probs, _ = L["attention"](L["frame_scores"](h), L["frame_probs"](feat_probs), mask)
    if "correction" in L:
        return L["emotion"](probs, L["correction"](L["context"](h, mask)))
    return L["emotion"](probs)


def frozen_parts(model: keras.Model, cfg: ModelConfig) -> tuple[keras.Model, keras.Model] | None:
    """When the per-frame CNN is frozen (a video-only model with a pretrained, frozen network): (frames ->
    per-frame features and probabilities, (features, mask) -> clip probabilities), sharing the model's
    layers. Training then reads every frame once instead of once per epoch; what it fits is the model's
    own head. None for designs whose per-frame CNN trains."""
    if cfg.fine_tune != "frozen" or cfg.init == "scratch" or list(cfg.modalities) != ["video"]:
        return None
    feats = model.get_layer("flip_average" if cfg.flip_average else "frame_cnn").output
    features = keras.Model(model.input["frames"], feats, name="frame_features")
    names = {"frame_probs": "frame_probs", "rnn": "bilstm" if cfg.bidirectional else "lstm", "dropout": "head_dropout",
             "frame_scores": "frame_scores", "attention": "attention", "context": "context", "correction": "correction",
             "emotion": "emotion"}
    L = {role: model.get_layer(name) for role, name in names.items() if name in {x.name for x in model.layers}}
    x = keras.Input(tuple(feats.shape[1:]), name="frame_features")
    mask = keras.Input(tuple(model.input["mask"].shape[1:]), name="mask")
    return features, keras.Model({"frame_features": x, "mask": mask}, _apply_head(cfg, L, x, mask), name="head")
