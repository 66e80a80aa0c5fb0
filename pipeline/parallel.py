"""Run one function per table row on Dask: a local cluster sized to the machine, an existing
scheduler, or (``workers=0``) in this process. Used by the cohort-scale commands (preprocess,
harmonize) so they share one behaviour: one single-threaded worker process per core, results as
they complete, a progress bar.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

from tqdm import tqdm

__all__ = ["map_rows", "SINGLE_THREAD_ENV"]

SINGLE_THREAD_ENV = {
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


def map_rows(
    fn: Callable[..., dict],
    rows: list[dict],
    *args: Any,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    desc: str = "",
    **kwargs: Any,
) -> list[dict]:
    """``[fn(row, *args, threads=..., **kwargs) for row in rows]``, in completion order.

    Args:
        fn: a module-level function (it is pickled to the workers) taking ``threads`` (int or None:
            how many threads it may use) and returning a record dict; it must catch its own
            per-row errors so that one bad row never stops the others.
        workers: local worker processes (default: CPU cores); 0 = run here, without Dask.
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``); overrides ``workers``.
            Its workers keep their own thread settings (``threads=None``).
    """
    bar = tqdm(total=len(rows), desc=desc, unit="image", disable=not progress)
    records: list[dict] = []
    try:
        if workers == 0 and scheduler is None:
            for row in rows:
                records.append(fn(row, *args, threads=None, **kwargs))
                bar.update()
            return records
        from dask.distributed import Client, LocalCluster, as_completed

        _dask_logs_to_root()

        if scheduler is not None:
            client, cluster, threads = Client(scheduler), None, None
        else:
            cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.WARNING,
                env=SINGLE_THREAD_ENV,
            )
            client, threads = Client(cluster), 1
        try:
            futures = [client.submit(fn, row, *args, threads=threads, pure=False, **kwargs) for row in rows]
            for future in as_completed(futures):
                records.append(future.result())
                bar.update()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return records
    finally:
        bar.close()


def _dask_logs_to_root() -> None:
    """Dask's ``distributed`` logger prints INFO lines (scheduler, nanny, worker registration) to stderr through
    its own handler; send them through the root handlers instead, so that ``mriharmony``'s console shows only
    warnings and its log file keeps the rest. Worker processes log at WARNING (``silence_logs``)."""
    logger = logging.getLogger("distributed")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
