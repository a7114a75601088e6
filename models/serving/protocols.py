"""Request bodies -> texts, and scores -> answers, in TF Serving's REST API and KServe's V2 protocol.

Both protocols answer an error as `{"error": "..."}` with an HTTP status; `RequestError` carries both.
"""

from __future__ import annotations

import dataclasses
import math

INPUT_NAME = "text"              # the export's serving signature names its input so (models/run_dir.py)
OUTPUT_NAME = "probabilities"


class RequestError(Exception):
    """A request the server answers with `status` and `{"error": message}`, and goes on serving."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may hold."""

    max_instances: int = 1024
    max_review_bytes: int = 1 << 20


def check_texts(texts: list, limits: Limits, where: str) -> list[str]:
    """The instances as texts; refuses an empty list, too many, a non-string or an over-long one."""
    if not texts:
        raise RequestError(400, f"{where} is empty: send at least one review.")
    if len(texts) > limits.max_instances:
        raise RequestError(400, f"{where} holds {len(texts)} instances; at most {limits.max_instances} a request.")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(400, f"{where}[{index}] is not a string (it is {type(text).__name__}): each instance "
                                    "is one review's raw text.")
        if len(text) > limits.max_review_bytes or len(utf8(text, f"{where}[{index}]")) > limits.max_review_bytes:
            raise RequestError(400, f"{where}[{index}] is over {limits.max_review_bytes} bytes.")
    return texts


def utf8(text: str, where: str) -> bytes:
    """The review's UTF-8 bytes. JSON can spell a lone surrogate (`"\\ud800"`), which no UTF-8 holds: refused
    here, as this request's error, rather than failing the model call of the batch it would share with others."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(400, f"{where} is not valid Unicode: a lone surrogate (U+{ord(text[exc.start]):04X}) at "
                                f"character {exc.start}. A JSON \\u escape of U+D800-U+DFFF must come in a pair (one "
                                "character); send UTF-8 text.") from None


def _named(value, where: str):
    """TF Serving's named-input form: `{"text": ...}` stands for the value itself."""
    if isinstance(value, dict):
        if set(value) != {INPUT_NAME}:
            raise RequestError(400, f"{where} names inputs {sorted(value)}; the model has one, {INPUT_NAME!r}.")
        return value[INPUT_NAME]
    return value


def tf_serving_texts(body, limits: Limits) -> tuple[list[str], str]:
    """A `:predict` body -> (texts, "instances" or "inputs"): row format, or columnar."""
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object with \"instances\" (or \"inputs\").")
    unknown = set(body) - {"instances", "inputs", "signature_name"}
    if unknown or ("instances" in body) == ("inputs" in body):
        raise RequestError(400, "the body must hold exactly one of \"instances\" and \"inputs\""
                                + (f"; unknown fields {sorted(unknown)}" if unknown else "") + ".")
    if body.get("signature_name", "serving_default") not in ("serving_default", "serve"):
        raise RequestError(400, f"no signature {body['signature_name']!r}; the model has \"serving_default\".")
    style = "instances" if "instances" in body else "inputs"
    values = _named(body[style], style) if style == "inputs" else body[style]
    if not isinstance(values, list):
        raise RequestError(400, f"\"{style}\" must be a list of reviews.")
    if style == "instances":
        values = [_named(value, f"instances[{index}]") for index, value in enumerate(values)]
    return check_texts(values, limits, style), style


def tf_serving_answer(rows: list[list[float]], style: str) -> dict:
    """Row format answers `predictions`, one row per instance; columnar answers `outputs`."""
    return {"predictions": rows} if style == "instances" else {"outputs": rows}


def v2_texts(body, limits: Limits) -> tuple[list[str], str | None]:
    """An `infer` body -> (texts, the request's id): one BYTES input tensor of the reviews."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise RequestError(400, "the body must be a JSON object with \"inputs\": a list of one tensor.")
    if len(body["inputs"]) != 1 or not isinstance(body["inputs"][0], dict):
        raise RequestError(400, f"the model takes one input tensor, {INPUT_NAME!r}; got {len(body['inputs'])}.")
    tensor = body["inputs"][0]
    missing = {"name", "shape", "datatype", "data"} - set(tensor)
    if missing:
        raise RequestError(400, f"the input tensor lacks {sorted(missing)}.")
    if tensor["datatype"] != "BYTES":
        raise RequestError(400, f"the input tensor's datatype is {tensor['datatype']!r}; reviews are \"BYTES\".")
    shape = tensor["shape"]
    if not (isinstance(shape, list) and shape and all(isinstance(size, int) and size >= 0 for size in shape)):
        raise RequestError(400, f"the input tensor's shape {shape!r} is not a list of sizes.")
    data = _flatten(tensor["data"])
    if len(data) != math.prod(shape):
        raise RequestError(400, f"the input tensor's shape {shape} holds {math.prod(shape)} values; its data "
                                f"has {len(data)}.")
    request_id = body.get("id")
    return check_texts(data, limits, "inputs[0].data"), request_id if isinstance(request_id, str) else None


def _flatten(data) -> list:
    if not isinstance(data, list):
        raise RequestError(400, "the input tensor's data must be a list.")
    flat = []
    for item in data:
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat


def v2_answer(model_name: str, rows: list[list[float]], request_id: str | None) -> dict:
    """The scores as one FP32 tensor (reviews x outputs), row-major, as V2 sends tensors."""
    answer = {"model_name": model_name, "model_version": "1",
              "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [len(rows), len(rows[0])],
                           "data": [value for row in rows for value in row]}]}
    return {**answer, "id": request_id} if request_id is not None else answer
