"""A small HTTP client for HBI's API (standard library only), shared by scripts/chaos.py and
scripts/load.py."""

import json
import socket
import time
import urllib.error
import urllib.request
import uuid


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port, alive, name, timeout=180):
    """Waits until /health/ready on 127.0.0.1:`port` answers 200; `alive()` false means the
    process exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{name} exited before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{name} not ready in {timeout} s")


class Api:
    def __init__(self, base, key):
        self.base, self.key = base, key

    def call(self, method, path, body=None, content_type=None, timeout=300):
        """(status, parsed JSON or text); status 0 for a connection error."""
        headers = {"X-API-Key": self.key}
        if content_type:
            headers["content-type"] = content_type
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        except (urllib.error.URLError, OSError) as err:
            status, raw = 0, str(err).encode()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def json(self, method, path, payload):
        return self.call(method, path, json.dumps(payload).encode(), "application/json")

    def create_book(self, title):
        """POST /books/: (status, body)."""
        return self.json("POST", "/books/", {"title": title})

    def upload(self, book_id, pdf, file_name):
        """POST /books/{id}/upload with `pdf` as the multipart field `file`."""
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\ncontent-disposition: form-data; name="file"; filename="{file_name}"\r\n'
                f"content-type: application/pdf\r\n\r\n"
            ).encode()
            + pdf
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return self.call("POST", f"/books/{book_id}/upload", body, f"multipart/form-data; boundary={boundary}")
