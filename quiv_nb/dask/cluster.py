"""Getting a `distributed.Client`: a local cluster, a scheduler address, or the one in use.

Used by `DaskExecutor` and by `%quiv cluster`. Calls here block the calling thread until the
cluster answers.
"""

from __future__ import annotations

from typing import Any

import distributed
from distributed import Client

from ..errors import ConfigurationError

__all__ = ["connect", "resolve_client", "start_local_cluster"]


def start_local_cluster(
    n_workers: int = 2,
    *,
    processes: bool = True,
    threads_per_worker: int | None = None,
    **cluster_kwargs: Any,
) -> Client:
    """Start a `LocalCluster` bound to 127.0.0.1 and return a client that owns it.

    Closing the returned client also closes its cluster. `processes=True` (Dask's default) runs
    each worker in its own process, so CPU-bound Python code runs in parallel; `processes=False`
    keeps workers as threads of this process (fast to start, shares the GIL). Other keywords go
    to `distributed.LocalCluster` (e.g. `dashboard_address=":0"` for a free port; Dask's
    default is 8787). Blocks until the workers are up (a few seconds with processes).
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ConfigurationError(f"n_workers must be an integer >= 1, got {n_workers!r}")
    if processes or "protocol" in cluster_kwargs or "host" in cluster_kwargs:
        cluster_kwargs.setdefault("host", "127.0.0.1")
    # With processes=False and no host, Dask talks in-process (inproc://) and binds no socket.
    return Client(n_workers=n_workers, processes=processes, threads_per_worker=threads_per_worker, **cluster_kwargs)


def connect(address: str, *, timeout: float = 10.0, **client_kwargs: Any) -> Client:
    """Connect to the Dask scheduler at `address` (e.g. ``tcp://10.0.0.5:8786``).

    Raises `ConfigurationError` for an address that is not a string and `ConnectionError` when
    no scheduler answers within `timeout` seconds.
    """
    if not isinstance(address, str) or not address.strip():
        raise ConfigurationError(f"address must be a Dask scheduler address such as 'tcp://host:8786', got {address!r}")
    try:
        return Client(address.strip(), timeout=timeout, **client_kwargs)
    except OSError as exc:
        raise ConnectionError(f"no Dask scheduler answered at {address!r} within {timeout:g}s: {exc}") from exc


def resolve_client(client: Client | str | None) -> tuple[Client, bool]:
    """The synchronous client `DaskExecutor(client)` means, and whether we created it (so own it).

    `client` is a `Client`, a scheduler address (we connect) or None (the current default
    client). Raises `ConfigurationError` for anything else, an asynchronous client, or no client.
    """
    if isinstance(client, str):
        return connect(client), True
    if client is None:
        try:
            return distributed.default_client(), False
        except ValueError:
            raise ConfigurationError(
                "DaskExecutor needs a Dask client: pass DaskExecutor(client), a scheduler address, "
                "or create a distributed.Client first (quiv_nb.dask.start_local_cluster() makes one)"
            ) from None
    if isinstance(client, Client):
        if client.asynchronous:
            raise ConfigurationError(
                "DaskExecutor needs a synchronous distributed.Client (asynchronous=False): the scheduler "
                "submits from its own threads"
            )
        return client, False
    raise ConfigurationError(
        f"client must be a distributed.Client, a scheduler address or None, got {type(client).__name__}"
    )
