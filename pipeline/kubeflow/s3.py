"""s3:// for TensorFlow in every process of a pod: the entrypoint's own, and Beam's worker processes.

TensorFlow's S3 filesystem lives in tensorflow-io, which registers it with `tf.io.gfile` when imported. With
`--direct_running_mode=multi_processing` Beam runs each bundle in a fresh `sdk_worker_main` process that never
imports the entrypoint, so ImageExampleGen's DoFn, TFT's writers and TFMA would find no `s3` scheme there.
Beam imports every `--beam_plugin` module by name when such a worker starts (apache_beam 2.59
runners/worker/sdk_worker_main.py: `_import_beam_plugins(setup_options.beam_plugins)`, the options reaching
the worker in its PIPELINE_OPTIONS), so `xfer compile` adds `BEAM_ARG` to every Beam node's args. Importing
this module is therefore its whole interface: it enables S3 on import, the one side effect it exists for.
"""

from __future__ import annotations

import logging
import os

BEAM_ARG = f"--beam_plugin={__name__}"


def s3_environment(environ: dict[str, str]) -> dict[str, str]:
    """tensorflow-io's S3 filesystem reads its endpoint from S3_ENDPOINT; boto3 and Beam read AWS_ENDPOINT_URL.
    Copies the latter, scheme included: tensorflow-io 0.37 reads no S3_USE_HTTPS (the string is not in its
    plugin library) and takes http or https from the endpoint itself, so a bare host:port would be spoken to
    over TLS (curl "SSL connect error" against a plain-http MinIO)."""
    endpoint = environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint or "S3_ENDPOINT" in environ:
        return {}
    return {"S3_ENDPOINT": endpoint}


def complete_empty_uploads() -> None:
    """Beam 2.59's S3 writer (apache_beam/io/aws/s3io.py S3Uploader.finish) completes the multipart upload of
    an empty file with no parts at all, which S3 refuses with MalformedXML (its own comment says it "will
    fail"): an empty rejects.jsonl failed ImageExampleGen. One empty part makes it a valid upload of nothing;
    every other write is unchanged."""
    try:
        from apache_beam.io.aws import s3io
    except ImportError:  # No boto3: Beam has no S3 filesystem to fix.
        return
    finish = s3io.S3Uploader.finish
    if getattr(finish, "completes_empty_uploads", False):
        return

    def finish_with_a_part(self) -> None:
        if not self.buffer and not self.parts:
            self._write_to_s3(b"")
        finish(self)

    finish_with_a_part.completes_empty_uploads = True
    s3io.S3Uploader.finish = finish_with_a_part


def enable() -> bool:
    """Registers s3:// with tf.io.gfile in this process, and makes Beam's S3 writer accept empty files; False
    when tensorflow-io is not installed."""
    os.environ.update(s3_environment(dict(os.environ)))
    complete_empty_uploads()
    try:
        import tensorflow_io  # noqa: F401  Registers the s3:// filesystem with tf.io.gfile.
    except ImportError:
        logging.getLogger(__name__).warning("tensorflow-io is not installed: tf.io.gfile cannot use s3:// paths")
        return False
    return True


enable()
