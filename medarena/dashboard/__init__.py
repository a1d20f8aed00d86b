"""The Streamlit dashboard: challenges, phase leaderboards, submissions with per-case results and
logs, and case images. It reads through the services (which apply the access rules) and the case store.

``launch()`` starts it as a server process; ``medarena dashboard`` calls it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def app_path() -> Path:
    return Path(__file__).with_name("app.py")


def launch(port: int = 8501, address: str = "127.0.0.1") -> subprocess.Popen:
    """Start ``streamlit run`` on the app in the background, with this process's environment
    (MEDARENA_HOME, MEDARENA_DATABASE_URL, MEDARENA_STORE pass through); the caller stops it."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.headless", "true", "--server.port", str(port), "--server.address", address,
        "--browser.gatherUsageStats", "false",
        # no "Deploy" menu and no developer toolbar for the people looking at the leaderboards
        "--client.toolbarMode", "viewer",
    ]
    return subprocess.Popen(command, env=os.environ.copy())
