# The MLflow tracking server of infra/k8s: the same MLflow as requirements.lock, with its PostgreSQL driver,
# boto3 for the S3-compatible artifact store, and the basic-auth app.
#   docker build -f infra/docker/mlflow.Dockerfile -t $REGISTRY/xfer-mlflow:3.17.2 infra/docker
FROM python:3.10-slim
ARG MLFLOW_VERSION=3.17.2
RUN pip install --no-cache-dir "mlflow[auth]==${MLFLOW_VERSION}" "psycopg2-binary==2.9.13" "boto3==1.44.5" \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin mlflow
USER 10001:10001
WORKDIR /home/mlflow
EXPOSE 5000
CMD ["mlflow", "server", "--help"]
