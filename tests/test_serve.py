"""`serve` as clients use it: a real server in its own process on a free loopback port, spoken to over HTTP."""

import concurrent.futures
import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import built_once, easy_data, free_port, listening, wait_until
from models.evaluation import predict
from models.explain import Explainer
from models.serving.server import served_names
from models.training import FitSettings, fit
from pipeline.errors import ReviewflowError

ROOT = Path(__file__).resolve().parents[1]
LIMITS = ["--max-instances", "16", "--max-review-bytes", "2000", "--max-body-bytes", "20000"]
TEXTS = ["great value, I love it", "awful: it broke, a waste", "", "café über naïve"]


class Served:
    """A `cli.py serve` process and a way to talk to it."""

    def __init__(self, runs, *options):
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, "cli.py", "serve", *map(str, runs), "--port", str(self.port),
                                         *options], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        deadline = time.monotonic() + 180  # a bound for a server that never starts, not a timing under test
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if self.request("GET", "/v2/health/ready")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the server did not start: {self.process.communicate(timeout=10)}")

    def request(self, method, path, body=None, raw: bytes | None = None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            connection.request(method, path, body=payload, headers=headers or {})
            response = connection.getresponse()
            text = response.read()
            return response.status, json.loads(text) if text and response.getheader(
                "content-type", "").startswith("application/json") else text.decode()
        finally:
            connection.close()

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=60)
        return self.process.returncode, stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A two-class cnn and a three-class linear run, fitted here; served and predicted in other processes."""
    root = built_once(tmp_path_factory, "serve", fit_runs)
    return root / "cnn", root / "stars"


def fit_runs(root: Path) -> None:
    polarity = easy_data(root / "polarity", 400, 12, test_lines=40, num_shards=1, vocab_size=400)
    quick = dict(epochs=1, steps_per_epoch=4, validation_steps=1, seed=0, max_len=24)
    fit(FitSettings(model="cnn", data=polarity, out=root / "cnn", **quick), verbose=0)
    stars = root / "stars-corpus"
    stars.mkdir()
    from pipeline import synthetic
    from pipeline.shard.job import shard_corpus
    from pipeline.shard.plan import ShardSettings

    train = synthetic.write_corpus(stars / "train.ft.txt", 600, seed=1, num_classes=3, mean_words=12)
    test = synthetic.write_corpus(stars / "test.ft.txt", 60, seed=2, num_classes=3, mean_words=12)
    shard_corpus(ShardSettings(train=train, test=test, out=stars / "data", num_shards=1, vocab_size=400))
    fit(FitSettings(model="linear", data=stars / "data", out=root / "stars", **quick,
                    hparams={"buckets": 4096}), verbose=0)


@pytest.fixture(scope="module")
def server(runs):
    served = Served(runs, *LIMITS)
    yield served
    served.stop()


def expected(run, texts) -> np.ndarray:
    """What `predict` gives for these texts: P(positive) for two classes, every class's otherwise."""
    rows = []
    for prediction in predict(run, texts):
        rows.append([prediction.p_positive] if prediction.p_positive is not None
                    else list(prediction.probabilities.values()))
    return np.array(rows)


def test_both_protocols_answer_what_predict_says(server, runs):
    cnn, stars = runs
    status, answer = server.request("POST", "/v1/models/cnn:predict", {"instances": TEXTS})
    assert status == 200
    np.testing.assert_allclose(answer["predictions"], expected(cnn, TEXTS), atol=1e-5)
    status, columnar = server.request("POST", "/v1/models/cnn/versions/1:predict", {"inputs": {"text": TEXTS}})
    assert status == 200 and np.allclose(columnar["outputs"], answer["predictions"], atol=1e-6)
    named = server.request("POST", "/v1/models/cnn:predict", {"instances": [{"text": text} for text in TEXTS]})[1]
    assert np.allclose(named["predictions"], answer["predictions"], atol=1e-6)
    body = {"id": "42", "inputs": [{"name": "text", "shape": [2, 2], "datatype": "BYTES",
                                    "data": [TEXTS[:2], TEXTS[2:]]}]}
    status, v2 = server.request("POST", "/v2/models/stars/infer", body)
    assert status == 200 and v2["id"] == "42" and v2["outputs"][0]["shape"] == [4, 3]
    np.testing.assert_allclose(np.reshape(v2["outputs"][0]["data"], (4, 3)), expected(stars, TEXTS), atol=1e-5)


def test_explain_answers_what_predict_explain_says(server, runs):
    cnn, stars = runs
    for name, run in (("cnn", cnn), ("stars", stars)):
        status, answer = server.request("POST", f"/v1/models/{name}:explain", {"instances": TEXTS[:2]})
        assert status == 200, answer
        explainer = Explainer.for_run(run)  # here; the server is the other process
        local = [explainer.explain(text).to_json() for text in TEXTS[:2]]
        for served, given in zip(answer["explanations"], local):
            assert served["label"] == given["label"] and served["method"] == given["method"]
            assert [token["text"] for token in served["tokens"]] == [token["text"] for token in given["tokens"]]
            np.testing.assert_allclose([t["weight"] for t in served["tokens"]], [t["weight"] for t in given["tokens"]],
                                       atol=1e-5)
    assert answer["explanations"][0]["method"] == "exact"  # stars is a linear model
    assert server.request("POST", "/v1/models/cnn:explain", {"instances": ["x"] * 40})[0] == 400  # over the limit
    status, predicted = server.request("POST", "/v1/models/cnn:predict", {"instances": TEXTS})
    np.testing.assert_allclose(predicted["predictions"], expected(cnn, TEXTS), atol=1e-5)  # still probabilities


def test_status_metadata_and_health(server):
    assert server.request("GET", "/v1/models/cnn")[1]["model_version_status"][0]["state"] == "AVAILABLE"
    metadata = server.request("GET", "/v1/models/stars/metadata")[1]
    assert metadata["metadata"]["reviewflow"]["classes"] == ["1", "2", "3"]
    assert metadata["metadata"]["reviewflow"]["positive_class"] is None
    assert server.request("GET", "/v1/models/cnn/metadata")[1]["metadata"]["reviewflow"]["positive_class"] == "2"
    model = server.request("GET", "/v2/models/stars")[1]
    assert model["inputs"][0]["datatype"] == "BYTES" and model["outputs"][0]["shape"] == [-1, 3]
    assert server.request("GET", "/v2/models/cnn/ready") == (200, {"name": "cnn", "ready": True})
    assert server.request("GET", "/v2/health/live") == (200, {"live": True})


@pytest.mark.parametrize("path, body, status, words", [
    ("/v1/models/cnn:predict", b"{not json", 400, "not JSON"),
    ("/v1/models/cnn:predict", {"instance": ["a"]}, 400, "exactly one of"),
    # Python's JSON parser recurses once per level: it was a 500 saying "the model failed".
    ("/v1/models/cnn:predict", b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nests too deep"),
    ("/v1/models/cnn:predict", {"instances": "a review"}, 400, "must be a list"),
    ("/v1/models/cnn:predict", {"instances": ["fine", 3]}, 400, "instances[1] is not a string"),
    ("/v1/models/cnn:predict", {"instances": []}, 400, "is empty"),
    # JSON's "\ud800": no UTF-8 holds it; it failed the model call (500) of every request batched with it.
    ("/v1/models/cnn:predict", {"instances": ["fine", "bad \ud800"]}, 400,
     "instances[1] is not valid Unicode: a lone surrogate (U+D800) at character 4"),
    ("/v2/models/cnn/infer", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["\udfff"]}]},
     400, "lone surrogate (U+DFFF)"),
    ("/v1/models/cnn:predict", {"instances": ["x"] * 17}, 400, "at most 16"),
    ("/v1/models/cnn:predict", {"instances": ["x" * 2001]}, 400, "over 2000 bytes"),
    ("/v1/models/cnn:predict", {"instances": ["x" * 1500] * 14}, 413, "at most 20,000"),
    ("/v1/models/nothing:predict", {"instances": ["a"]}, 404, "no model 'nothing'"),
    ("/v1/models/cnn:classify", {"instances": ["a"]}, 404, "no such resource"),
    ("/v2/models/cnn/infer", {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
     400, "BYTES"),
    ("/v2/models/cnn/infer", {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["a"]}]},
     400, "holds 3 values"),
    ("/v2/models/nothing/infer", {"inputs": []}, 404, "no model"),
    ("/v3/anything", {}, 404, "no such resource"),
])
def test_a_bad_request_is_answered_in_its_protocols_shape_and_the_server_goes_on(server, path, body, status, words):
    raw = body if isinstance(body, bytes) else None
    got, answer = server.request("POST", path, None if raw else body, raw=raw)
    assert got == status and words in answer["error"]
    assert server.request("POST", "/v1/models/cnn:predict", {"instances": ["still serving"]})[0] == 200


def test_concurrent_clients_each_get_their_own_answer_and_disconnects_harm_no_one(server, runs):
    texts = [f"review {index} " + ("great love " if index % 2 else "awful broke ") * (index % 7) for index in range(96)]
    wanted = expected(runs[0], texts)

    def ask(index):
        status, answer = server.request("POST", "/v1/models/cnn:predict", {"instances": [texts[index]]})
        return index, status, answer["predictions"][0]

    def hang_up(_):  # a client that sends half a body and goes away
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST /v1/models/cnn:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"inst")

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(hang_up, range(8)))
        answers = list(pool.map(ask, range(len(texts))))
    assert all(status == 200 for _, status, _ in answers)
    np.testing.assert_allclose([row for _, _, row in answers], wanted, atol=1e-5)
    metrics = server.request("GET", "/metrics")[1]
    assert 'reviewflow_requests_total{code="200",model="cnn",protocol="tf_serving"}' in metrics
    assert "reviewflow_batch_size_bucket" in metrics and "reviewflow_request_seconds_bucket" in metrics


def in_progress(served) -> float:
    metrics = served.request("GET", "/metrics")[1]
    line = next(line for line in metrics.splitlines()
                if line.startswith('reviewflow_requests_in_progress{protocol="tf_serving"}'))
    return float(line.split()[-1])


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(runs):
    served = Served(runs[:1])
    body = json.dumps({"instances": TEXTS}).encode()
    served.request("POST", "/v1/models/cnn:predict", {"instances": ["first"]})  # so the gauge's row exists
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as sock:
        # A request half sent when SIGTERM comes: the server waits for the rest and answers it.
        sock.sendall(b"POST /v1/models/cnn:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        wait_until(lambda: in_progress(served) == 1)       # the server holds it, waiting for its body
        served.process.send_signal(signal.SIGTERM)
        wait_until(lambda: not listening(served.port))    # shutting down: no new connection is taken
        sock.sendall(body[10:])
        answer = b""
        while not answer.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    _, stderr = served.process.communicate(timeout=60)
    assert served.process.returncode == 0 and answer.startswith(b"HTTP/1.1 200")
    assert len(json.loads(answer.split(b"\r\n\r\n", 1)[1])["predictions"]) == len(TEXTS)
    assert "POST /v1/models/cnn:predict 200 4 reviews" in stderr   # the request's log line


def test_a_run_that_cannot_load_stops_the_server_before_it_listens(runs, tmp_path):
    done = subprocess.run([sys.executable, "cli.py", "serve", str(runs[0]), str(tmp_path), "--port",
                           str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1 and done.stderr.count("Error:") == 1 and "Traceback" not in done.stderr
    assert str(tmp_path) in done.stderr and "serving" not in done.stdout


def test_a_port_in_use_is_refused_by_name_before_any_run_loads(runs, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:   # another server, listening there
        port = taken.getsockname()[1]
        # tmp_path is no run: had the runs loaded first, the error would name it instead of the port.
        done = subprocess.run([sys.executable, "cli.py", "serve", str(runs[0]), str(tmp_path), "--port", str(port)],
                              cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1 and done.stderr.count("Error:") == 1 and "Traceback" not in done.stderr
    assert f"port {port} on localhost is in use" in done.stderr and "another --port" in done.stderr
    assert str(tmp_path) not in done.stderr and "serving" not in done.stdout


def test_a_port_another_server_bound_while_the_runs_loaded_is_refused_when_listening():
    from pipeline.ports import bound_socket, refusing_busy_ports
    from pipeline.errors import ReviewflowError

    first = bound_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = bound_socket("127.0.0.1", port)   # both may bind while neither listens (SO_REUSEADDR, as uvicorn)
    with first:
        first.listen()
        with pytest.raises(ReviewflowError, match=f"port {port} on 127.0.0.1 is in use"):
            with refusing_busy_ports("127.0.0.1", port, second):
                second.listen()
    assert second.fileno() == -1   # closed, not left bound


def test_each_run_is_served_under_a_name_a_url_can_hold_and_no_two_under_one(tmp_path):
    runs = [tmp_path / "runs" / "cnn", tmp_path / "other" / "cnn"]
    assert served_names(runs[:1], None) == ["cnn"]
    assert served_names(runs, ["cnn", "my cnn"]) == ["cnn", "my cnn"]   # a space is %20 in the URL
    with pytest.raises(ReviewflowError, match="would both be served as 'cnn'; give each a --name"):
        served_names(runs, None)
    for name in ("a/b", "cnn:v2", "what?", "#1", ""):
        with pytest.raises(ReviewflowError, match="cannot be a model name in a URL"):
            served_names(runs[:1], [name])
