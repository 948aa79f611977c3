"""S3 folder markers, which KFP's launcher cannot copy: found and removed under a step's outputs.

Kept apart from pipeline/kubeflow/s3.py, which loads TensorFlow's S3 filesystem on import: this needs boto3
only.
"""

from __future__ import annotations


def directory_markers(keys: dict[str, int]) -> list[str]:
    """The keys (key -> size) that are zero-byte directory markers with other keys under them.

    KFP's launcher copies each input artifact into the pod before the step runs and saves such a marker as a
    file, so the next key under it cannot be written ("not a directory") and the task fails before the step
    starts (kubeflow/pipelines 2.17.0 backend/src/v2/objectstore/object_store.go DownloadBlob,
    sanitizeDownloadPath; kubeflow/pipelines#13476, open, seen with TensorFlow's GCS filesystem). The TFX steps'
    own writes through tensorflow-io 0.37.1 leave none on S3 (`tf.io.gfile.makedirs` writes no `dir/` object,
    probed against moto), but other writers do (S3 consoles and tools that "create a folder"), so each step
    clears its own outputs of them. A marker with nothing under it only becomes an empty file, harmlessly."""
    markers = sorted(key for key, size in keys.items() if key.endswith("/") and size == 0)
    return [marker for marker in markers if any(key != marker and key.startswith(marker) for key in keys)]


def remove_directory_markers(uris: list[str]) -> int:
    """Deletes the markers `directory_markers` names under each s3:// artifact URI, which S3 does not need
    (a folder is a key prefix there), so the next step's launcher can copy the artifact; returns how many."""
    uris = [uri for uri in uris if uri.startswith("s3://")]
    if not uris:
        return 0
    import boto3

    client = boto3.client("s3")
    removed = 0
    for uri in uris:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        prefix = prefix.rstrip("/")
        keys: dict[str, int] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"] == prefix or item["Key"].startswith(f"{prefix}/"):
                    keys[item["Key"]] = item["Size"]
        for marker in directory_markers(keys):
            client.delete_object(Bucket=bucket, Key=marker)
            removed += 1
    return removed
