"""What `xfer` prints. By default: one line when each node starts and when it finishes (with its time), xfer's
own lines (one per epoch among them) and the summary. `--verbose` shows everything the libraries say.

The libraries are loud in three ways, each silenced at its source rather than filtered from the output:
- TensorFlow's C++ logging (CUDA factory errors on a CPU machine, oneDNN and CPU-feature notices) reads
  TF_CPP_MIN_LOG_LEVEL once, when TensorFlow loads, so it is set in the process before any import of it;
- Python warnings (google-cloud's FutureWarnings about Python 3.10, deprecation notices) are filtered by the
  warnings machinery, for every module but xfer's own;
- Python logging (TFX's resolved-artifact protos, Beam's batch statistics, TFT's format advice) is cut to
  errors, except TFX's node lines, which are rewritten with the node's time.
Nothing here runs at import: `quiet_before_imports` and `configure` are called by the CLI's `main`.
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from pathlib import Path

# TensorFlow's levels: 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR. C++ errors that matter reach Python as
# exceptions; what TF logs at ERROR on a CPU machine is the CUDA plugin registration noise.
_QUIET_TF_CPP_LEVEL = "3"
_OWN_MODULES = r"(components|pipeline|benchmarks)(\.|$)"
# xfer's own code. Beam and TFX also log on the root logger, so the file a record comes from tells them apart.
_OWN_FOLDERS = tuple(
    str(Path(__file__).resolve().parent.parent / name) + os.sep for name in ("components", "pipeline", "benchmarks")
)
_NODE_LINE = re.compile(r"^Component (?P<node>\S+) is (?P<event>running|finished)\.$")


def quiet_before_imports(verbose: bool) -> None:
    """Must run before TensorFlow is imported. A value the user set in the environment wins."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", _QUIET_TF_CPP_LEVEL)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # MLflow's download progress bars would draw one line per champion download; its own logger (which has a
    # handler of its own) announces database migrations at INFO.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # `module` is matched against the module a warning is attributed to: everything but xfer's own code.
    warnings.filterwarnings("ignore", module=rf"^(?!{_OWN_MODULES})")


class _Progress(logging.Filter):
    """Lets through xfer's own lines at INFO, anything at ERROR, and TFX's "Component X is running/finished"
    lines, which it rewrites with how long the node took."""

    def __init__(self) -> None:
        super().__init__()
        self._started: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or os.path.abspath(record.pathname).startswith(_OWN_FOLDERS):
            return True
        # TFX logs "Component %s is running." with the node as an argument: match the formatted line.
        match = _NODE_LINE.match(record.getMessage()) if record.name == "absl" else None
        if match is None:
            return False
        node, now = match["node"], time.monotonic()
        if match["event"] == "running":
            self._started[node] = now
            record.msg, record.args = "%s: started", (node,)
        else:
            seconds = now - self._started.pop(node, now)
            record.msg, record.args = "%s: finished in %s", (node, format_seconds(seconds))
        return True


def configure(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if verbose:
        return
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Progress())
    # Libraries call absl's set_verbosity(WARNING) while they trace graphs (seen during Transform), which would
    # drop TFX's node lines before any filter sees them; here the filter above decides instead, so the absl
    # logger is held at INFO.
    absl_logger = logging.getLogger("absl")
    absl_logger.setLevel(logging.INFO)
    set_level = absl_logger.setLevel
    absl_logger.setLevel = lambda level: set_level(
        min(level if isinstance(level, int) else logging.getLevelName(level), logging.INFO)
    )


def format_seconds(seconds: float) -> str:
    """0.4 s, 12.3 s, 4 min 05 s."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"
