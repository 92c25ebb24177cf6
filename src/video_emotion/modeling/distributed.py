"""Multi-worker training: `tf.distribute.MultiWorkerMirroredStrategy` with Keras 3's `Model.fit`.

Keras 3.15 with TensorFlow 2.21 cannot run `Model.fit` under MultiWorkerMirroredStrategy as shipped
(keras-team/keras#20585, the same failure as ray-project/ray#47464). Two places fail on CPU here:

1. `fit` builds the model symbolically from the first batch, which it first averages across the
   workers (`strategy.reduce("MEAN", <PerReplica batch>)`): "Attempt to convert a value (PerReplica:
   ...) with an unsupported type ... to a Tensor". Building needs only the batch's shapes and dtypes,
   so the model is built from a local batch instead (`_maybe_symbolic_build` of this model only).
2. Each step averages its logs across workers with `strategy.reduce("MEAN", v, axis=0)`, and the
   logs are scalars: "Invalid reduction dimension 0 for input with 0 dimensions". For a multi-worker
   collective strategy the scalars are averaged with `axis=None`, which is what the reduction means.

Both are applied only under a multi-worker strategy; single-process training is untouched. They are
tied to keras==3.15.1 (pinned); the multi-worker test of `tests/integration/test_cluster.py` fails if a
Keras upgrade changes the internals they touch. Remove them when Keras fixes #20585.
"""

from __future__ import annotations

from typing import Any

_PATCHED = False


def multiworker_strategy():
    """The strategy for the cluster that `TF_CONFIG` describes (set before this is called)."""
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()


def is_multiworker(strategy: Any) -> bool:
    """A collective strategy over more than one worker: the case Keras mishandles."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    return bool(tf_trainer._collective_all_reduce_multi_worker(strategy))


def prepare_fit(model: Any, strategy: Any, sample_batch: tuple) -> None:
    """Apply the two workarounds above to `model` (built and compiled in `strategy.scope()`)."""
    global _PATCHED
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    def build_from_local_batch(iterator=None, data_batch=None) -> None:
        with strategy.scope():
            model._symbolic_build(data_batch=sample_batch)

    model._maybe_symbolic_build = build_from_local_batch
    if not _PATCHED:
        shipped = tf_trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction in ("mean", "auto") and tf_trainer._collective_all_reduce_multi_worker(strategy):
                return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
            return shipped(values, strategy, reduction)

        tf_trainer.reduce_per_replica = reduce_per_replica
        _PATCHED = True
