"""Modeling: the Keras model (`model`, no I/O but weights), its inputs (`inputs`), the training loop
(`training`), metrics (`metrics`) and the experiment tracking and model registry (`registry`, the
only module that imports mlflow)."""
