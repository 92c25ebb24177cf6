"""params.yaml sections of the stages that learn from real corpora a user brings (FER+, RAVDESS speech).

Each does nothing heavy while its `root` is empty: the shipped weights stay as they are."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FinetuneFacesConfig:
    """Stage `finetune_faces`: the per-frame network fine-tuned on FER+ (modeling.ferplus)."""

    root: str = ""             # the FER+ folder (manifest.csv or FER+'s label.csv files); "": the stage does nothing
    blocks: int = 1            # last dense blocks fine-tuned (0: the classifier only; 1 or 2)
    mirror: bool = False       # also train on the mirror image of every training face
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 0.0005
    patience: int = 3
    dropout: float = 0.2
    seed: int = 42
    mix: float = 1.0           # weight of the fine-tuned weights against the published ones (WiSE-FT); 1: fine-tuned
    report_test: bool = True   # score FER+ Test once at the end (false while choosing on Valid)

    def __post_init__(self) -> None:
        if self.blocks not in (0, 1, 2):
            raise ValueError(f"finetune_faces.blocks must be 0, 1 or 2, got {self.blocks}")
        if not 0.0 < self.mix <= 1.0:
            raise ValueError(f"finetune_faces.mix must be in (0, 1], got {self.mix}")


@dataclass(frozen=True)
class VoiceConfig:
    """Stage `train_voice`: the voice head learned from RAVDESS speech (modeling.voice, modeling.voice_data)."""

    root: str = ""             # the extracted RAVDESS speech folder; "": the shipped voice model is used as it is
    cache: str = ".cache/voice-ravdess"  # encoder readings, one file per utterance (computed once)
    l2: float = 0.015          # penalty on the read-out's weights (per sample; ~ logistic regression's C = 0.03)
    dropout: float = 0.0
    epochs: int = 300          # full-batch steps of Adam
    learning_rate: float = 0.01
    seed: int = 7

    def __post_init__(self) -> None:
        if self.l2 < 0 or not 0.0 <= self.dropout < 1.0 or self.epochs < 1:
            raise ValueError("voice: l2 >= 0, dropout in [0, 1) and epochs >= 1 are required")


__all__ = ["FinetuneFacesConfig", "VoiceConfig"]
