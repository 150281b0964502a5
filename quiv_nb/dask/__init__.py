"""Run quiv_nb jobs on a Dask cluster: `Quiv(executor=DaskExecutor(client))`.

The scheduler keeps timing, retries and bookkeeping; this executor only moves job bodies to the
cluster and brings three things back:

* **Progress.** On the worker, `_progress_hook(...)` converts the payload to plain values (a bad
  value raises `TypeError` in the handler, naming the key) and buffers it. Each worker batches the
  records of all its jobs into one `Worker.log_event` message on this executor's topic, at most
  one per `flush_interval` (the first payload after a quiet spell goes out at once). The client
  receives them through `Client.subscribe_topic` and replays them in order, on one dispatch
  thread, into the scheduler's normal progress hook (renderers coalesce; the wire never drops).
* **Outcomes.** A job's start and end travel the same way, so the client sees start, every
  payload, then end, in that order. The end record carries the outcome when it pickles small
  (most do: one message per batch instead of a gather per job); a bigger one is gathered.
  Results, failures (traceback formatted on the worker) and cancellations become the same
  `Outcome` the thread pool produces. Each job's Dask key is `quiv-<task>-<job id>`; its future is
  released as soon as the job is finished.
* **Cancel.** `cancel_job` and timeouts set the job's stop event. A job that has started gets its
  `distributed.Event` (`quiv_nb-stop-<job id>`) set; a small watcher coroutine on the worker's
  event loop mirrors it into the local `threading.Event` the handler was given (`Event.wait` with
  a timeout, in a loop). A job still queued is cancelled with `Client.cancel`. The event is
  cleared when the job ends.

Layout (each module one job; imports point down the list):

    wire.py     the job header, the record types (Started/Progress/Ended), plain payloads
    worker.py   on the worker: run one job body, batch its records through an outbox
    cluster.py  getting a client: start_local_cluster, connect, resolve_client
    jobs.py     the client's job records and table, the dispatch thread's messages
    remote.py   ClusterOps: control calls on the client's loop (stop events, cancel, gather, topic trim)
    replay.py   Replayer: the dispatch thread that replays records in order
    client.py   DaskExecutor: the facade the scheduler talks to

Workers (and, as for any Dask graph, the scheduler) need quiv_nb installed: the job body runs
inside a function of this package. The client must be synchronous (the default). Importing this
package needs the `distributed` extra; `import quiv_nb` never imports it.
"""

from __future__ import annotations

try:
    import cloudpickle  # noqa: F401  (the worker side pickles outcomes with it)
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "quiv_nb.dask needs the 'distributed' package; install it with: pip install 'quiv_nb[dask]'"
    ) from exc

from .client import DaskExecutor
from .cluster import connect, start_local_cluster

__all__ = ["DaskExecutor", "connect", "start_local_cluster"]
