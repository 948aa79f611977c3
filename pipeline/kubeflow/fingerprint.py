"""The compiled pipeline's `DataFingerprint` step: a digest of every file under the dataset location.

KFP's cache key is made of a task's input values, upstream artifact ids, command and image
(kubeflow/pipelines 2.17.0 backend/src/v2/cacheutils/cache.go GenerateCacheKey). ImageExampleGen has no
upstream artifact and constant inputs, and TFX's own input fingerprint comes from a driver KFP never runs, so
without this step a scheduled run would serve ingest (and all that follows) from the first run's cache forever.
This step runs uncached in every run; its output parameter is an input of ImageExampleGen, so KFP's own cache
key changes exactly when a file under the dataset is added, removed, resized or rewritten.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys

OUTPUT = "fingerprint"


def fingerprint(data: str) -> tuple[str, int]:
    """(digest, file count) of the tree under `data`: each file's relative path, size and modification time.
    Listing and stat only, so a large dataset costs one listing, not a read of every image."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(data):
        raise FileNotFoundError(f"kubeflow.data: no dataset at {data}")
    digest = hashlib.sha256()
    count = 0
    for directory, _, files in sorted(tf.io.gfile.walk(data)):
        for name in sorted(files):
            path = os.path.join(directory, name)
            stat = tf.io.gfile.stat(path)
            relative = os.path.relpath(path, data)
            digest.update(f"{relative}\0{stat.length}\0{stat.mtime_nsec}\n".encode())
            count += 1
    return digest.hexdigest()[:32], count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeflow_fingerprint")
    parser.add_argument("--data", required=True, help="the dataset location (kubeflow.data)")
    parser.add_argument("--output", required=True, help="the output parameter's file, from KFP's placeholder")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    digest, count = fingerprint(args.data)
    logging.getLogger(__name__).info("%s: %d files, fingerprint %s", args.data, count, digest)
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as handle:  # A local file in the pod; KFP's launcher reads it.
        handle.write(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
