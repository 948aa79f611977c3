"""Kubeflow Pipelines: the compiled DAG (`runner`), what each pod runs (`entrypoint`), the REST client that
uploads and schedules it (`client`), and the S3, platform-spec and data-fingerprint pieces those need."""
