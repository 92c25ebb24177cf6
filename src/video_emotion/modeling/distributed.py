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


HEARTBEAT_TIMEOUT_S = 120  # a worker silent this long is taken for dead (TensorFlow's own default: 10 s)


def multiworker_strategy():
    """The strategy for the cluster that `TF_CONFIG` describes (set before this is called).

    The workers' coordination service is configured as the strategy would configure it, except that a worker
    is declared dead only after `HEARTBEAT_TIMEOUT_S` without a heartbeat. With TensorFlow's 10 s, a worker
    starved of CPU on a busy node (each has one CPU) was declared dead mid-epoch, and the whole fit aborted
    ("Task ... heartbeat timeout"). A worker process that really dies is still seen at once: Ray reports the
    actor's death and the stage fails with it."""
    import tensorflow as tf
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.distribute.cluster_resolver import TFConfigClusterResolver
    from tensorflow.python.eager import context

    spec = TFConfigClusterResolver().cluster_spec()
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker") if job in spec.jobs]
    if jobs and context.context().coordination_service is None:
        context.context().configure_coordination_service(
            service_type="standalone", service_leader=multi_worker_util.coordination_leader(spec),
            coordinated_jobs=jobs, heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000)
    return tf.distribute.MultiWorkerMirroredStrategy()


def heartbeat_timeout_s() -> float:
    """The heartbeat timeout this process's coordination service runs with (0: TensorFlow's default)."""
    from tensorflow.python.eager import context

    config = context.context().coordination_service
    return config.heartbeat_timeout_in_ms / 1000 if config is not None else 0.0


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
