"""The compute figures on the command line: per case and per submission in `results`, and
`medarena compute` for a phase's totals (organizers; the local database, or the server when
logged in)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from medarena.cli_common import fails_cleanly

console = Console()
CASE_HEADERS = ("cpu s", "peak MiB", "gpu s")


def case_cells(case: dict[str, Any]) -> list[str]:
    """A case's CPU seconds, peak memory and GPU seconds ("" where not measured)."""
    return [_seconds(case.get("cpu_seconds")), _mib(case.get("peak_memory_bytes")), _seconds(case.get("gpu_seconds"))]


def totals_line(totals: dict[str, Any]) -> str:
    line = (f"compute: {totals['cases']} case(s) ran, wall {_seconds(totals['wall_seconds']) or 0} s, "
            f"CPU {_seconds(totals['cpu_seconds']) or 0} s, GPU {_seconds(totals['gpu_seconds']) or 0} s")
    if totals.get("peak_memory_bytes") is not None:
        line += f", largest peak memory {_mib(totals['peak_memory_bytes'])} MiB"
    if totals["measured_cases"] < totals["cases"]:
        line += f" (CPU and memory measured for {totals['measured_cases']} of them)"
    return line


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _mib(value: int | None) -> str:
    return "" if value is None else f"{value / 2**20:.0f}"


@fails_cleanly
def compute(challenge: Annotated[str, typer.Option("--challenge", "-c", help="challenge slug")],
            phase: Annotated[str, typer.Option("--phase", "-p", help="phase slug")]):
    """What a phase's submissions used (CPU, GPU, memory), in all and per participant, beside the
    phase's compute budget: organizers only."""
    from medarena import cli_remote

    if client := cli_remote.connected():
        data = client.call("GET", f"/api/v1/challenges/{challenge}/phases/{phase}/compute")
    else:
        data = _local(challenge, phase)
    table = Table("participant", "cases", "wall s", "cpu s", "gpu s", "largest peak MiB")
    for row in data["participants"]:
        table.add_row(Text(row["participant"]), *_row(row))
    table.add_row(Text("all", style="bold"), *_row(data["totals"]))
    console.print(table)
    budget = {name: hours for name, hours in data["budget"].items() if hours}
    console.print(Text("compute budget: " + (", ".join(f"{name} {hours:g}" for name, hours in budget.items())
                                             if budget else "none")))


def _row(totals: dict[str, Any]) -> list[str]:
    return [str(totals["cases"]), _seconds(totals["wall_seconds"]), _seconds(totals["cpu_seconds"]),
            _seconds(totals["gpu_seconds"]), _mib(totals["peak_memory_bytes"])]


def _local(challenge: str, phase: str) -> dict[str, Any]:
    from medarena.services.compute import local_phase_compute
    from medarena.services.settings import load_settings

    return local_phase_compute(load_settings(), challenge, phase)
