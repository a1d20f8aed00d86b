"""The threshold algorithm as an inference server (grand-challenge's invoke API).

Started once; ``GET /health`` answers 200 when the server is ready, and each ``POST /invoke``
segments the case that the platform has just put in /input, writes the result to /output and
answers 201 (any other status fails the case). Whatever is loaded at start (a model, say) stays
loaded for the next case. Only the Python standard library and NumPy are needed.
"""

from __future__ import annotations

import os
import traceback
from http.server import BaseHTTPRequestHandler, HTTPServer

import threshold


class Handler(BaseHTTPRequestHandler):
    served = 0  # cases served since this server started

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self._answer(200 if self.path == "/health" else 404)

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/invoke":
            self._answer(404)
            return
        Handler.served += 1
        print(f"threshold-server: case {Handler.served} since the start")
        try:
            threshold.main()
        except BaseException:  # noqa: BLE001 - a failed case must not stop the server
            traceback.print_exc()
            self._answer(500)
            return
        self._answer(201)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep the log for the algorithm's own lines
        pass


if __name__ == "__main__":
    port = int(os.environ.get("GRAND_CHALLENGE_COMPONENT_USER_WEBSERVER_PORT", "4743"))
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
