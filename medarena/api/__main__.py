"""`python -m medarena.api`: the API server alone, in a process that imports only what it serves
(`medarena serve` starts this one; the whole command line would bring every platform module).
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medarena.api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="server processes (each with its own caches)")
    args = parser.parse_args(argv)

    import uvicorn

    if args.workers > 1:  # each worker process builds the application from the environment's settings
        uvicorn.run("medarena.api.app:create_app", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level="warning", access_log=False)
        return
    from medarena.api.app import create_app
    from medarena.services.settings import load_settings

    # no access log: at this log level its lines are never shown, but each request would build one
    uvicorn.run(create_app(load_settings()), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
