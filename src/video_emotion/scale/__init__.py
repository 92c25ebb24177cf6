"""Scale-out on Ray: the same work as the laptop path, spread over the CPUs of one machine or a cluster.

`cluster` joins the Ray cluster named by `RAY_ADDRESS` or starts a local one for the job; `batch` is the
Ray engine of `video-emotion batch` (a stream of decode-and-faces tasks that call the model in a pool
of actors, each holding the model once); `actors` holds those model actors (kept between jobs on a
cluster that stays up) and brings the bundle to every node; `preprocess` crops the clips of the `preprocess`
stage in parallel Ray tasks (same arrays, same order); `multiworker` trains with
`tf.distribute.MultiWorkerMirroredStrategy` on several worker processes. Every result equals the
local path's: the work per item is the library's own function, only where it runs changes. Stands on
the floor of stages and serving (uses inference, modeling, features, data).
"""
