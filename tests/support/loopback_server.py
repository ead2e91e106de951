"""A local OpenAI-compatible chat server that answers reformatting requests from the caption it is sent.

It lets the pipeline run end to end offline (tests, benchmarks, trying a configuration) over real HTTP, and can be
told to misbehave like a real service: rate limits with Retry-After, server errors, bodies that are not JSON,
replies that are not the asked-for JSON object or lack a field, slow answers.

    with LoopbackChatServer(faults={"pleural effusion": ["429", "ok"]}) as server:
        ...  # base_url = server.base_url

    python -m tests.support.loopback_server [--port 8080]   # prints its base URL, serves until Ctrl-C
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOURS = ("ok", "429", "500", "badbody", "notjson", "missing", "slow")
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"RIFF", b"GIF8")


class LoopbackChatServer:
    """``faults`` maps a caption substring to the behaviours of successive requests that contain it (then "ok")."""

    def __init__(self, faults: dict[str, list[str]] | None = None, delay_s: float = 0.0, slow_s: float = 1.0,
                 retry_after: str = "1", model: str = "loopback", api_key: str | None = None, port: int = 0) -> None:
        for steps in (faults or {}).values():
            unknown = set(steps) - set(BEHAVIOURS)
            if unknown:
                raise ValueError(f"unknown behaviour {sorted(unknown)}; known: {', '.join(BEHAVIOURS)}")
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.delay_s = delay_s
        self.slow_s = slow_s
        self.retry_after = retry_after
        self.model = model
        self.api_key = api_key  # when set, requests without "Authorization: Bearer <api_key>" get 401
        self.requests = 0
        self.behaviours: Counter = Counter()
        self.images_seen = 0
        self.texts: list[str] = []  # the text of every request, in arrival order
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-chat", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> LoopbackChatServer:
        self._thread.start()
        return self

    def serve(self) -> None:
        """Serve in this thread until interrupted."""
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LoopbackChatServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _behaviour(self, text: str) -> str:
        with self._lock:
            self.requests += 1
            for needle, steps in self.faults.items():
                if needle in text and steps:
                    behaviour = steps.pop(0)
                    break
            else:
                behaviour = "ok"
            self.behaviours[behaviour] += 1
            return behaviour

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length))
                    text, n_images = _user_content(body["messages"])
                except (ValueError, KeyError, TypeError) as exc:
                    return self._send(400, {"error": {"message": f"bad request: {exc}"}})
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    return self._send(401, {"error": {"message": "invalid API key"}})
                with server._lock:
                    server.images_seen += n_images
                    server.texts.append(text)
                behaviour = server._behaviour(text)
                if server.delay_s:
                    time.sleep(server.delay_s)
                if behaviour == "429":
                    return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": server.retry_after})
                if behaviour == "500":
                    return self._send(500, {"error": {"message": "internal error"}})
                if behaviour == "badbody":
                    return self._send_raw(200, b"<html>upstream hiccup</html>", "text/html")
                if behaviour == "slow":
                    time.sleep(server.slow_s)
                reply = _reply(text)
                if behaviour == "missing":
                    del reply["answer"]
                content = "Sure! Here is the description you asked for." if behaviour == "notjson" \
                    else json.dumps(reply)
                self._send(200, {
                    "id": "chatcmpl-loopback", "object": "chat.completion", "model": server.model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": len(text) // 4 + 85 * n_images,
                              "completion_tokens": len(content) // 4,
                              "total_tokens": len(text) // 4 + 85 * n_images + len(content) // 4},
                })

            def _send(self, status: int, obj: dict, headers: dict | None = None) -> None:
                self._send_raw(status, json.dumps(obj).encode(), "application/json", headers)

            def _send_raw(self, status: int, data: bytes, ctype: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client that gave up (timeout, killed process) leaves a broken connection: not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _user_content(messages: list[dict]) -> tuple[str, int]:
    """The text of the conversation and the number of images; every image must be a base64 image data URL."""
    texts, n_images = [], 0
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content:
            if part["type"] == "text":
                texts.append(part["text"])
            elif part["type"] == "image_url":
                url = part["image_url"]["url"]
                header, _, data = url.partition(",")
                if not header.startswith("data:image/") or not header.endswith(";base64"):
                    raise ValueError("image_url is not a base64 image data URL")
                try:
                    raw = base64.b64decode(data, validate=True)
                except binascii.Error as exc:
                    raise ValueError(f"image data is not base64: {exc}") from exc
                if not raw.startswith(_IMAGE_MAGIC):
                    raise ValueError("image data is not a PNG, JPEG, WebP or GIF file")
                n_images += 1
    if n_images == 0:
        raise ValueError("the request has no image")
    return "\n".join(texts), n_images


def _reply(text: str) -> dict:
    caption = text.split("Caption:\n", 1)[-1].split("\n", 1)[0].strip()
    return {
        "modality": "CT" if " CT" in f" {caption}" else "Microscopy" if "stain" in caption.lower() else "Other",
        "body_part": "Chest" if "lung" in caption.lower() else "Other",
        "description": f"The image shows the following: {caption}",
        "question": "What is the most notable finding in this image?",
        "answer": f"The most notable finding is described as: {caption[:160]}",
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="a local OpenAI-compatible chat server for trying the pipeline")
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    args = parser.parse_args(argv)
    server = LoopbackChatServer(delay_s=args.delay, port=args.port)
    print(server.base_url, flush=True)
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
