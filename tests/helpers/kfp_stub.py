"""A small stand-in for the KFP v2beta1 REST API on 127.0.0.1: records every request, answers the calls
`kfp.Client` makes for a run and a recurring run, and rejects bodies a real server would reject."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2


class KfpStub:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.experiments: dict[str, str] = {}
        # What GET /runs/{id} answers, one entry per look (the last repeats): {"state": ..., "tasks": {...}}.
        self.run_progress: list[dict] = []
        self.workflow = "xfer-sample-x7k2p"  # The Argo workflow's name, which begins every pod's name.
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                stub._handle(self, "GET")

            def do_POST(self) -> None:
                stub._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> KfpStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and r["path"] == path]

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}") if length else {}
        query = parse_qs(parts.query)
        self.requests.append({"method": method, "path": parts.path, "query": query, "body": body})
        status, answer = self._answer(method, parts.path, query, body)
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, method: str, path: str, query: dict, body: dict) -> tuple[int, dict]:
        if method == "GET" and path == "/apis/v2beta1/healthz":
            return 200, {"multi_user": False}
        if method == "GET" and path == "/apis/v2beta1/experiments":
            found = [
                {"experiment_id": i, "display_name": n}
                for n, i in self.experiments.items()
                if n in "".join(query.get("filter", []))
            ]
            return 200, {"experiments": found, "total_size": len(found)}
        if method == "POST" and path == "/apis/v2beta1/experiments":
            if not body.get("display_name"):
                return 400, {"error": "experiment needs a display_name"}
            self.experiments[body["display_name"]] = f"exp-{len(self.experiments) + 1}"
            return 200, {"experiment_id": self.experiments[body["display_name"]], **body}
        if method == "POST" and path in ("/apis/v2beta1/runs", "/apis/v2beta1/recurringruns"):
            problem = self._check_run_body(body, recurring=path.endswith("recurringruns"))
            if problem:
                return 400, {"error": problem}
            if path.endswith("recurringruns"):
                return 200, {"recurring_run_id": "recurring-1", **body}
            return 200, {"run_id": "run-1", **body}
        if method == "GET" and path.startswith("/apis/v2beta1/runs/") and self.run_progress:
            return 200, self._run(path.rsplit("/", 1)[1])
        return 404, {"error": f"stub has no {method} {path}"}

    def _run(self, run_id: str) -> dict:
        """A v2beta1 Run as the API server returns it: task details for drivers, the root DAG and the tasks."""
        looks = len(self.calls("GET", f"/apis/v2beta1/runs/{run_id}"))
        progress = self.run_progress[min(looks, len(self.run_progress)) - 1]
        details = [{"display_name": "root", "state": progress["state"], "task_id": "t0"}]
        for number, (name, state) in enumerate(sorted(progress["tasks"].items()), start=1):
            details.append(
                {
                    "display_name": f"{name}-driver",
                    "state": "SUCCEEDED",
                    "task_id": f"d{number}",
                    "pod_name": f"{self.workflow}-system-container-driver-{number:010d}",
                }
            )
            details.append(
                {
                    "display_name": name,
                    "state": state,
                    "task_id": f"t{number}",
                    "pod_name": f"{self.workflow}-system-container-impl-{number:010d}",
                }
            )
        return {
            "run_id": run_id,
            "display_name": "first",
            "state": progress["state"],
            "run_details": {"task_details": details},
        }

    def _check_run_body(self, body: dict, recurring: bool) -> str:
        if body.get("experiment_id") not in self.experiments.values():
            return f"unknown experiment_id {body.get('experiment_id')!r}"
        if not body.get("display_name"):
            return "display_name is required"
        spec = body.get("pipeline_spec") or {}
        try:
            json_format.ParseDict(spec.get("pipeline_spec", {}), pipeline_spec_pb2.PipelineSpec())
            json_format.ParseDict(spec.get("platform_spec", {}), pipeline_spec_pb2.PlatformSpec())
        except json_format.ParseError as error:
            return f"bad pipeline_spec: {error}"
        if not spec.get("pipeline_spec", {}).get("root"):
            return "pipeline_spec.pipeline_spec.root is missing"
        if recurring:
            cron = (body.get("trigger") or {}).get("cron_schedule", {}).get("cron", "")
            if len(cron.split()) != 6:
                return f"cron must have 6 fields, got {cron!r}"
            if body.get("mode") != "ENABLE":
                return "recurring run is not enabled"
        return ""
