"""One line, once per process, when fastfnn's kernels are about to be compiled rather than loaded.

Numba compiles a kernel the first time it is needed on a machine (an empty cache, another CPU,
another Numba or fastfnn version) and loads it from its on-disk cache afterwards. A compile of
the training loop takes tens of seconds, so the first one a process starts is announced on the
``fastfnn`` logger (``logging.getLogger("fastfnn")``, level WARNING: shown on stderr by Python's
last-resort handler where the application configured none; the command line prints it). Cache
loads say nothing, and only fastfnn's own kernels are watched (Numba's ``numba:compile`` event,
which fires on compiles, never on cache hits).
"""

import logging

from numba.core import event

LOGGER = logging.getLogger("fastfnn")
MESSAGE = ("compiling fastfnn's kernels for this CPU and %s input (once: about 12-30 s on 2 "
           "cores, 20-50 s on one, by CPU; every later process loads them from Numba's cache)")


class _FirstCompile(event.Listener):
    """Logs :data:`MESSAGE` at the first compile of a fastfnn kernel, once."""

    said = False

    def on_start(self, ev):
        dispatcher = ev.data.get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "")
        if self.said or not module.startswith(__package__ + "."):
            return
        self.said = True
        dtype = "float32" if "float32" in str(ev.data.get("args", "")) else "float64"
        LOGGER.warning(MESSAGE, dtype)

    def on_end(self, ev):
        pass


event.register("numba:compile", _FirstCompile())
