"""What a Beam DoFn sees in a worker process: imported there as tests.helpers.beam_s3_probe (the checkout is on
PYTHONPATH)."""

from __future__ import annotations

import json
import os


def stat_in_worker(path: str) -> str:
    import tensorflow as tf

    return json.dumps({"pid": os.getpid(), "exists": tf.io.gfile.exists(path)})
