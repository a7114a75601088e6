"""The HTTP server of `serve`: TF Serving's REST API and KServe V2 over the same batched models.

Starlette routes on uvicorn. A model call never runs on the event loop (`batching.py`); a bad request is
answered in its protocol's shape and the server goes on serving; every request is logged (or every
`log_every`-th) and counted in Prometheus's text format at `/metrics`. There is no authentication: the
server listens on loopback unless told otherwise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import prometheus_client
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from models.serving import protocols
from models.serving.batching import BatchSettings, DynamicBatcher
from models.serving.protocols import Limits, RequestError

MAX_BODY_BYTES = 4 << 20
MAX_EXPLAIN_INSTANCES = 32  # an explanation costs ~50 model calls (integrated gradients): a request holds few
log = logging.getLogger("reviewflow.serve")


@dataclasses.dataclass
class ServedModel:
    """One run behind the server: its name, classes and the batcher that scores for it."""

    name: str
    run: Path
    model_kind: str                # the architecture (config.json's settings.model)
    classes: list[str]             # in the model's output order (two classes: P(classes[1]) is the output)
    outputs: int                   # 1 for two classes (P(positive)), N for N classes
    batcher: DynamicBatcher
    _explainer: object = None      # models.explain.Explainer over a copy of its own, made at the first :explain
    _explaining: concurrent.futures.ThreadPoolExecutor = dataclasses.field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explain"))

    async def explain(self, texts: list[str]) -> list[dict]:
        """Each review's explanation (`predict --explain --format jsonl`'s), one review at a time off the loop.

        The explainer has its own copy of the model: it swaps the output layer's activation and the embeddings'
        outputs while it traces, which the batcher's copy must never see.
        """
        def explain_all() -> list[dict]:
            if self._explainer is None:
                from models.explain import Explainer

                self._explainer = Explainer.for_run(self.run)
            return [self._explainer.explain(text).to_json() for text in texts]

        return await asyncio.get_running_loop().run_in_executor(self._explaining, explain_all)

    def metadata(self) -> dict:
        return {"name": self.name, "run": str(self.run), "model": self.model_kind, "classes": self.classes,
                "positive_class": self.classes[1] if self.outputs == 1 else None}


def load_served_model(name: str, run_dir: Path, batch_settings: BatchSettings, on_batch) -> ServedModel:
    """The run loaded as `predict` loads it (safe mode, the same checks), and warmed up with one call."""
    import tensorflow as tf

    from models.evaluation import inference_batch_size
    from models.run_dir import RunDir

    run = RunDir(run_dir)
    model, config = run.load_model(), run.config()
    cap = inference_batch_size(config.settings.get("model"), None, batch_settings.max_batch_size)
    settings = dataclasses.replace(batch_settings, max_batch_size=max(1, min(cap, batch_settings.max_batch_size)))

    def score(texts: list[str]) -> np.ndarray:
        return np.asarray(model.predict_on_batch(tf.constant(texts)), dtype=np.float32)

    outputs = int(score(["warm up"]).shape[-1])
    return ServedModel(name, Path(run_dir), config.settings.get("model", "?"), config.class_names(), outputs,
                       DynamicBatcher(score, settings, on_batch))


class Metrics:
    """Request counts and latencies, and batch sizes, in a registry of the server's own."""

    def __init__(self):
        self.registry = prometheus_client.CollectorRegistry()
        self.requests = prometheus_client.Counter(
            "reviewflow_requests", "Requests answered", ["protocol", "model", "code"], registry=self.registry)
        self.latency = prometheus_client.Histogram(
            "reviewflow_request_seconds", "Seconds from a request's arrival to its answer", ["protocol", "model"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=self.registry)
        self.in_progress = prometheus_client.Gauge(
            "reviewflow_requests_in_progress", "Requests received and not yet answered", ["protocol"],
            registry=self.registry)
        self.reviews = prometheus_client.Counter(
            "reviewflow_reviews_scored", "Reviews scored", ["model"], registry=self.registry)
        self.batch_size = prometheus_client.Histogram(
            "reviewflow_batch_size", "Reviews per model call", ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry)


def parse_v1_path(target: str) -> tuple[str, str, str]:
    """`cnn:predict`, `cnn/metadata`, `cnn/versions/1:predict` -> (model name, resource, verb)."""
    path, _, verb = target.partition(":")
    name, *rest = path.split("/")
    if rest[:1] == ["versions"] and len(rest) >= 2:  # one version is served: any version number is it
        rest = rest[2:]
    return name, "/".join(rest), verb


async def read_json(request: Request, max_body_bytes: int):
    """The request's JSON body, refused past `max_body_bytes` before it is all read (413)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        raise RequestError(413, f"the body is {int(declared):,} bytes; at most {max_body_bytes:,}.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body_bytes:
            raise RequestError(413, f"the body is over {max_body_bytes:,} bytes.")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the body is not JSON: {exc}") from exc
    except RecursionError:  # Python's parser recurses once per level: "[[[[...]]]]" is a request's error
        raise RequestError(400, "the body's JSON nests too deep; a request is an object of lists of reviews.") \
            from None


@dataclasses.dataclass
class Server:
    """The served models and the server's limits; `app()` is the ASGI application."""

    models: dict[str, ServedModel]
    limits: Limits = Limits()
    max_body_bytes: int = MAX_BODY_BYTES
    log_every: int = 1
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    ready: bool = False
    _requests_seen: int = 0

    def model(self, name: str) -> ServedModel:
        if name not in self.models:
            raise RequestError(404, f"no model {name!r}; this server serves {', '.join(sorted(self.models))}.")
        return self.models[name]

    async def _answer(self, request: Request, protocol: str, name: str, handle) -> Response:
        """Run one request's `handle`, answering its errors in the protocol's shape; log and count it."""
        started, status, count = time.perf_counter(), 200, 0
        self.metrics.in_progress.labels(protocol).inc()
        try:
            body, count = await handle()
            return JSONResponse(body)
        except RequestError as exc:
            status = exc.status
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except ClientDisconnect:
            status = 499  # the client went away mid-request: nobody to answer
            return Response(status_code=499)
        except Exception as exc:  # a model call that failed: this request's error, not the server's end
            status = 500
            log.exception("serve: %s %s failed", request.method, request.url.path)
            return JSONResponse({"error": f"the model failed: {type(exc).__name__}: {exc}"[:500]}, status_code=500)
        finally:
            self.metrics.in_progress.labels(protocol).dec()
            seconds = time.perf_counter() - started
            known = name if name in self.models else "unknown"
            self.metrics.requests.labels(protocol, known, str(status)).inc()
            self.metrics.latency.labels(protocol, known).observe(seconds)
            self._requests_seen += 1
            if self._requests_seen % self.log_every == 0:
                log.info("serve: %s %s %d %d reviews %.1f ms", request.method, request.url.path, status, count,
                         1000 * seconds)

    async def _scores(self, served: ServedModel, texts: list[str]) -> list[list[float]]:
        scores = await served.batcher.score(texts)
        self.metrics.reviews.labels(served.name).inc(len(texts))
        return scores.tolist()

    # TensorFlow Serving's REST API (KServe V1).
    async def tf_serving(self, request: Request) -> Response:
        name, resource, verb = parse_v1_path(request.path_params["target"])

        async def handle():
            served = self.model(name)
            if request.method == "GET" and not verb and resource in ("", "metadata"):
                return (self._tf_metadata(served) if resource == "metadata" else self._tf_status()), 0
            if request.method != "POST" or verb not in ("predict", "explain") or resource:
                raise RequestError(404, f"no such resource: {request.method} {request.url.path}; POST "
                                        f"/v1/models/{name}:predict scores reviews, :explain explains them.")
            if verb == "explain":
                limits = dataclasses.replace(self.limits, max_instances=min(self.limits.max_instances,
                                                                            MAX_EXPLAIN_INSTANCES))
                texts, _ = protocols.tf_serving_texts(await read_json(request, self.max_body_bytes), limits)
                return {"explanations": await served.explain(texts)}, len(texts)
            with served.batcher.expecting():
                texts, style = protocols.tf_serving_texts(await read_json(request, self.max_body_bytes),
                                                          self.limits)
                return protocols.tf_serving_answer(await self._scores(served, texts), style), len(texts)

        return await self._answer(request, "tf_serving", name, handle)

    def _tf_status(self) -> dict:
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE" if self.ready else "LOADING",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    @staticmethod
    def _tf_metadata(served: ServedModel) -> dict:
        tensor = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, {"size": str(served.outputs)}]}}
        signature = {"inputs": {protocols.INPUT_NAME: {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1"}]},
                                                       "name": protocols.INPUT_NAME}},
                     "outputs": {"output_0": tensor}, "method_name": "tensorflow/serving/predict"}
        return {"model_spec": {"name": served.name, "version": "1", "signature_name": ""},
                "metadata": {"signature_def": {"signature_def": {"serving_default": signature}},
                             "reviewflow": served.metadata()}}

    # The Open Inference Protocol (KServe V2).
    async def v2_infer(self, request: Request) -> Response:
        name = request.path_params["name"]

        async def handle():
            served = self.model(name)
            with served.batcher.expecting():
                texts, request_id = protocols.v2_texts(await read_json(request, self.max_body_bytes), self.limits)
                return protocols.v2_answer(name, await self._scores(served, texts), request_id), len(texts)

        return await self._answer(request, "v2", name, handle)

    async def v2_model(self, request: Request) -> Response:
        name, rest = request.path_params["name"], request.path_params.get("rest", "")

        async def handle():
            served = self.model(name)
            if rest == "ready":
                return {"name": name, "ready": self.ready}, 0
            if rest:
                raise RequestError(404, f"no such resource {request.url.path}.")
            return {"name": name, "versions": ["1"], "platform": "tensorflow_keras",
                    "inputs": [{"name": protocols.INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
                    "outputs": [{"name": protocols.OUTPUT_NAME, "datatype": "FP32", "shape": [-1, served.outputs]}],
                    "parameters": served.metadata()}, 0

        return await self._answer(request, "v2", name, handle)

    async def v2_health(self, request: Request) -> Response:
        if request.path_params["state"] == "live":
            return JSONResponse({"live": True})
        if request.path_params["state"] == "ready":
            return JSONResponse({"ready": self.ready}, status_code=200 if self.ready else 503)
        return JSONResponse({"error": f"no such resource {request.url.path}."}, status_code=404)

    async def v2_server(self, request: Request) -> Response:
        return JSONResponse({"name": "reviewflow", "version": "1", "extensions": []})

    async def metrics_page(self, request: Request) -> Response:
        return Response(prometheus_client.generate_latest(self.metrics.registry),
                        media_type=prometheus_client.CONTENT_TYPE_LATEST)

    async def not_found(self, request: Request, exc) -> Response:
        return JSONResponse({"error": f"no such resource {request.url.path}."}, status_code=404)

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        for served in self.models.values():
            served.batcher.start()
        self.ready = True
        yield
        self.ready = False
        for served in self.models.values():  # uvicorn has let the requests in flight finish
            await served.batcher.stop()

    def app(self) -> Starlette:
        routes = [
            Route("/v1/models/{target:path}", self.tf_serving, methods=["GET", "POST"]),
            Route("/v2", self.v2_server, methods=["GET"]),
            Route("/v2/health/{state}", self.v2_health, methods=["GET"]),
            Route("/v2/models/{name}", self.v2_model, methods=["GET"]),
            Route("/v2/models/{name}/infer", self.v2_infer, methods=["POST"]),
            Route("/v2/models/{name}/{rest}", self.v2_model, methods=["GET"]),
            Route("/metrics", self.metrics_page, methods=["GET"]),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan,
                         exception_handlers={404: self.not_found, 405: self.not_found})


def configure_logging() -> None:
    """One line per request on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
