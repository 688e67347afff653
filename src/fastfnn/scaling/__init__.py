"""fastfnn past one machine's memory and cores, with Dask.

* :func:`fit_streaming` trains a model on a table larger than memory (a CSV or Parquet file, a
  glob of many, a dask DataFrame or Array) by streaming its partitions through ``partial_fit``,
  a few partitions in memory at a time.
* :func:`search` runs scikit-learn's grid, randomized and successive-halving searches on a Dask
  cluster (a local one it starts, or one at an address), one single-threaded fit per worker
  thread.
* :func:`predict_streaming` writes the predictions of a table larger than memory to CSV in the
  table's row order, partition by partition, in this process or on a cluster;
  :func:`predict_dask` gives them as a lazy dask collection (``dask_ml.wrappers.ParallelPostFit``).

Needs the optional dependencies: ``pip install "fastfnn[dask]"`` (dask[dataframe], distributed,
dask-ml).
"""

_MISSING = None
try:
    import dask.array  # noqa: F401
    import dask.dataframe  # noqa: F401
    import dask_ml  # noqa: F401
    import distributed  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised in a subprocess by the tests
    _MISSING = err

if _MISSING is not None:
    raise ImportError(
        f"fastfnn.scaling needs Dask ({_MISSING}): install it with "
        f'pip install "fastfnn[dask]"'
    ) from _MISSING

from ._cluster import cluster_client
from ._predict import predict_dask, predict_streaming
from ._search import SEARCH_KINDS, make_search, search
from ._data import EmptyFileWarning
from ._stream import EpochRecord, StreamingFit, TooFewPartitionsError, fit_streaming

__all__ = ["fit_streaming", "StreamingFit", "EpochRecord", "EmptyFileWarning",
           "TooFewPartitionsError", "search",
           "make_search", "SEARCH_KINDS", "predict_streaming", "predict_dask", "cluster_client"]
