"""An inference server that misbehaves on request: /input/behaviour names what to do with the case
(tests of the invoke protocol). Without that file it is the threshold server."""

from __future__ import annotations

import os
import time
from http.server import HTTPServer
from pathlib import Path

from server import Handler

STARTED = time.time()


class Probe(Handler):
    def do_POST(self) -> None:  # noqa: N802
        behaviour = Path("/input/behaviour")
        what = behaviour.read_text().strip() if behaviour.exists() else ""
        print(f"probe: case with behaviour {what or 'none'}", flush=True)
        if what == "crash":
            os._exit(3)
        if what == "hang":
            time.sleep(3600)
        if what == "status-500":
            self._answer(500)
            return
        if what == "fill-output":
            with open("/output/huge.bin", "wb") as file:
                while True:
                    file.write(b"\1" * (1 << 20))
        if what == "oom":
            hog = []
            while True:
                hog.append(bytearray(32 << 20))
        if what == "remember":  # state kept between cases: the start time of this server
            Path("/output/started").write_text(repr(STARTED))
            self._answer(201)
            return
        super().do_POST()


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(os.environ.get("GRAND_CHALLENGE_COMPONENT_USER_WEBSERVER_PORT", "4743"))),
               Probe).serve_forever()
