"""The logged MLflow model, as code: MLflow runs this file to build the pyfunc model.

`modeling.registry.log_model` gives this file's path as `python_model` (MLflow 3's "models from code"),
so nothing is pickled: MLflow copies the file into the logged model and executes it at load time, after
putting the model's own copy of the package (`code/video_emotion/`) on the path. Executing it defines the
wrapper and hands an instance to `mlflow.models.set_model`: that call is this file's purpose, which is why,
unlike a library module, it does work at import. Nothing in the package imports it.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd

from video_emotion.inference.analyze import ModelBundle, analyze_video


class VideoEmotionPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: a DataFrame column `video` of paths (optional `transcript` text) -> JSON results."""

    def load_context(self, context) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts["bundle"]))

    # The DataFrame hint is MLflow 3's "no schema inferred from the hint": input is taken as given (a list of
    # paths works too), as before, and MLflow no longer warns that `predict` has no type hints.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[str]:
        params = params or {}
        rows = (model_input.to_dict("records") if hasattr(model_input, "to_dict")
                else [{"video": v} for v in model_input])
        fps = float(params.get("sample_fps") or 0) or None
        return [json.dumps(analyze_video(r["video"], self.bundle, sample_fps=fps, lang=params.get("lang", "en"),
                                         transcript=r.get("transcript") or None)) for r in rows]


mlflow.models.set_model(VideoEmotionPyfunc())
