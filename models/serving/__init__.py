"""`serve`: trained runs behind HTTP, in the two protocols serving tools already speak.

- `protocols.py`: TensorFlow Serving's REST API (`:predict`, status, metadata; KServe V1 is the same) and the
  Open Inference Protocol (KServe V2: `infer` with a BYTES tensor, metadata, readiness): parse a request
  body into texts, or refuse it with the protocol's own error; shape the answer. Pure functions.
- `batching.py`: requests that arrive together are scored as one batch (a maximum size, a maximum wait),
  off the event loop, one model call at a time per model.
- `app.py`: the Starlette application (on uvicorn): the routes, limits, a log line per request and
  Prometheus metrics at `/metrics`.
"""
