"""OpenAI-compatible servers for the ``openai`` backend's tests, on 127.0.0.1 only.

- :func:`transformers_server`: a real ``transformers serve`` subprocess serving a local model folder
  (its ``/v1/completions`` takes raw prompts, ``max_tokens`` and ``stop``; it ignores ``n`` and answers
  greedily, DESIGN.md "Generation and serving");
- :class:`ScriptedServer`: a stdlib HTTP server in a thread whose completions answers come from a
  function, recording every request (retries, sampling fields, TIR transcripts).

Both are context managers that stop their server on exit.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def transformers_server(model_path: str, start_timeout_s: float = 120.0):
    """``transformers serve`` of ``model_path`` on a free loopback port; yields its base URL (``.../v1``)."""
    port = free_port()
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--device", "cpu", "--log-level", "warning", model_path]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 shared cores: the server must not take both
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + start_timeout_s
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"transformers serve did not come up on port {port} "
                                           f"(exit {proc.poll()}):\n{log.read().decode()[-3000:]}") from None
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


Reply = Callable[[dict, int], tuple[int, dict]]  # (request body, 0-based request number) -> (status, JSON)


def completion(text: str, finish_reason: str = "stop", tokens: int | None = 3) -> dict:
    """A /v1/completions answer holding one choice (``tokens`` None: without usage, as some servers)."""
    answer = {"id": "cmpl-test", "object": "text_completion", "created": 0, "model": "scripted",
              "choices": [{"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}]}
    if tokens is not None:
        answer["usage"] = {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": 1 + tokens}
    return answer


class ScriptedServer:
    """``/v1/models`` lists ``models``; ``/v1/completions`` answers ``reply(body, number)``.

    ``requests`` holds ``(path, body, headers)`` of every request, ``max_in_flight`` the most
    completions requests it held at once (``delay_s`` keeps each one open that long).
    """

    def __init__(self, reply: Reply, models: tuple[str, ...] = ("scripted",), delay_s: float = 0.0):
        self.reply, self.models, self.delay_s = reply, models, delay_s
        self.requests: list[tuple[str, dict, dict]] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def completions(self) -> list[dict]:
        """Bodies of the completions requests, in arrival order."""
        return [body for path, body, _ in self.requests if path.endswith("/completions")]

    def _answer(self, path: str, body: dict, headers: dict) -> tuple[int, dict]:
        with self._lock:
            number = len(self.completions())
            self.requests.append((path, body, headers))
        if path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test"}
                                                    for m in self.models]}
        if path != "/v1/completions":
            return 404, {"detail": f"no route {path}"}
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            return self.reply(body, number)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers

            def _respond(self, body: dict) -> None:
                status, answer = server._answer(self.path, body, dict(self.headers))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._respond({})

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                self._respond(json.loads(self.rfile.read(length) or b"{}"))

            def log_message(self, *args):  # quiet
                pass

        return Handler

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
