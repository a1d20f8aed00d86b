"""The medarena command line."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from medarena.cli_common import fails_cleanly
from medarena.display import json_text, plain, visible
from medarena.services.states import EvaluationState, JobState

app = typer.Typer(help="medarena: run medical-imaging challenges.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
challenge_app = typer.Typer(help="Create and inspect challenge definitions.", no_args_is_help=True)
data_app = typer.Typer(help="Ingest test data into the case store.", no_args_is_help=True)
app.add_typer(challenge_app, name="challenge")
app.add_typer(data_app, name="data")
console = Console()
err = Console(stderr=True)

Challenge = Annotated[str, typer.Option("--challenge", "-c", help="challenge slug")]
PhaseOpt = Annotated[str, typer.Option("--phase", "-p", help="phase slug")]
ModelOpt = Annotated[Path | None, typer.Option(
    "--model", help="a model tarball (.tar.gz), extracted read-only at /opt/ml/model for every case")]


def _settings():
    from medarena.services.settings import load_settings

    return load_settings()


# ---------------------------------------------------------------- challenges

@challenge_app.command("create")
@fails_cleanly
def challenge_create(file: Path):
    """Validate a challenge definition (YAML) and store it (an existing one is updated)."""
    from medarena.services import local

    challenge, created = local.create_challenge(_settings(), file)
    console.print(Text.assemble(f"{'created' if created else 'updated'} challenge ", plain(challenge, "bold"),
                                " from ", plain(file)))


@challenge_app.command("list")
@fails_cleanly
def challenge_list():
    """List the challenges."""
    from medarena.services import local

    table = _table("slug", "title", "task", "phases", "cases")
    for row in local.list_challenges(_settings()):
        table.add_row(*map(plain, row))
    console.print(table)


@challenge_app.command("show")
@fails_cleanly
def challenge_show(slug: str):
    """Show a challenge: its phases, interface, evaluation and ranking."""
    from rich.highlighter import JSONHighlighter

    from medarena.services import local

    text = json_text(local.show_challenge(_settings(), slug))
    console.print(JSONHighlighter()(Text(text)), soft_wrap=True)


# ---------------------------------------------------------------- data

@data_app.command("ingest")
@fails_cleanly
def data_ingest(source: Path, challenge: Challenge, phase: PhaseOpt):
    """Ingest SOURCE/<socket>/<case>.<ext> into the phase's input and reference stores."""
    from medarena.services import local

    with _progress(transient=True) as progress:  # an error is then the only line left
        task = progress.add_task("ingesting", total=None)
        n = local.ingest_phase(_settings(), challenge, phase, source,
                                   progress=lambda case: progress.advance(task))
    console.print(plain(f"ingested {n} cases into {challenge}/{phase}"))


# ---------------------------------------------------------------- submissions

@app.command()
@fails_cleanly
def submit(image: Annotated[str, typer.Argument(help="an image tarball (podman/docker save) or a local image name")],
           challenge: Challenge, phase: PhaseOpt,
           participant: Annotated[str | None, typer.Option("--participant", "-u",
                                                           help="who submits (without a login)")] = None,
           comment: str = "", model: ModelOpt = None,
           follow: Annotated[bool, typer.Option(help="follow the cases to the end (with a login)")] = False):
    """Submit an algorithm image (and its model tarball) to a phase; prints the submission id.

    Logged in (`medarena login`), the image goes to the server in parts; otherwise it is recorded
    in the local database."""
    from medarena.services import local

    if client := cli_remote.connected():
        return cli_remote.submit(client, image, challenge, phase, comment, follow, model)
    if participant is None:
        raise typer.BadParameter("--participant/-u is needed without a login (`medarena login URL`)")
    submission_id, digest = local.submit(_settings(), challenge, phase, participant, image, comment, model)
    console.print(plain(f"submission {submission_id} queued ({digest[:19]})"))


@app.command()
@fails_cleanly
def run(submission: Annotated[list[int] | None, typer.Option("--submission", "-s")] = None):
    """Run every queued or unfinished submission (or the given ones) to the end."""
    _run_with_progress(submission)


def _notice(text: str) -> None:
    err.print(plain(text, "yellow", lines=True))


def _run_with_progress(submission_ids) -> list[int]:
    from medarena.services import local

    with _progress() as progress:
        task = progress.add_task("cases", total=None)

        def on_progress(done, total, outcome):
            progress.update(task, completed=done, total=total,
                            description=visible(f"cases (last: {outcome.case} {outcome.state})") if outcome
                            else "cases")

        finished = local.run(_settings(), submission_ids, on_progress=on_progress,
                                 on_notice=_notice)
    if finished:
        console.print(f"finished submissions: {', '.join(map(str, finished))}")
    else:
        console.print("nothing to run")
    return finished


@app.command()
@fails_cleanly
def worker(poll: Annotated[float, typer.Option(help="seconds between looks for new submissions")] = 5.0):
    """Run submissions as they arrive, until stopped."""
    from medarena.services import local

    console.print("worker started; Ctrl-C stops it (unfinished cases resume on the next start)")
    while True:
        try:
            local.run(_settings())
        except local.SchedulerError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray failing to start on a loaded machine, a lost database
            _notice(f"worker: {type(exc).__name__}: {str(exc)[:300]}; trying again in {poll:g} s")
        time.sleep(poll)


@app.command()
@fails_cleanly
def reevaluate(submission: Annotated[list[int], typer.Argument()]):
    """Score stored predictions again with the current recipe (no algorithm runs again)."""
    from medarena.services import local

    local.reevaluate(_settings(), submission, on_notice=_notice)
    console.print(f"re-evaluated submissions {', '.join(map(str, submission))}")


@app.command()
@fails_cleanly
def cancel(submission: int):
    """Cancel a queued or running submission; it does not count against the participant's limit."""
    from medarena.services import local

    if client := cli_remote.connected():
        return cli_remote.cancel(client, submission)

    n = local.cancel(_settings(), submission)
    console.print(f"cancelled submission {submission} ({n} cases not run)")


@app.command()
@fails_cleanly
def status(challenge: Annotated[str | None, typer.Option("--challenge", "-c")] = None):
    """Submissions with their state and per-state case counts."""
    from medarena.services import local

    if client := cli_remote.connected():
        return cli_remote.status(client, challenge)

    table = _table("id", "challenge/phase", "participant", "state", "cases", "submitted", "image", "model")
    for row in local.submission_status(_settings(), challenge):
        table.add_row(*map(plain, row))
    console.print(table)


@app.command()
@fails_cleanly
def results(submission: int, output: Annotated[Path | None, typer.Option(help="write JSON here")] = None,
            logs: Annotated[bool, typer.Option(help="print the stdout and stderr tails of failed cases")] = False):
    """Per-case states, reasons, runtimes and metrics of a submission."""
    from medarena.services import local

    if client := cli_remote.connected():
        return cli_remote.results(client, submission, output, logs)

    data = local.submission_results(_settings(), submission)
    console.print(f"image {data['image_digest']}" + (f"  model {data['model_digest']}" if data["model_digest"] else ""),
                  highlight=False)
    if data["evaluation_state"] == EvaluationState.FAILED:
        console.print(Text(f"evaluation failed (the organizer's to fix): {data['evaluation_detail']}"))
    _print_case_table(data["cases"])
    console.print(Text(cli_compute.totals_line(data["compute"])))
    for case in data["cases"] if logs else []:
        if case["state"] == JobState.FAILED and (case["stdout_tail"] or case["stderr_tail"]):
            console.rule(plain(f"{case['case']}: {case['reason']}"))
            for name in ("stdout_tail", "stderr_tail"):
                if case[name].strip():
                    console.print(name.removesuffix("_tail"), style="bold")
                    console.print(plain(case[name].rstrip(), lines=True))
    if logs and data["evaluation_log"].strip():
        console.rule("evaluation container")
        console.print(plain(data["evaluation_log"].rstrip(), lines=True))
    for name, value in data["dataset"].items():
        if isinstance(value, (int, float)):
            console.print(plain(f"{name}: {value:.4g}"))
    if output:
        output.write_text(json.dumps(data, indent=2, default=str))


def _print_case_table(cases: list[dict]) -> None:
    metric_names = sorted({k for c in cases for r in c.get("metrics", []) for k in r
                           if k not in ("label",)})
    table = _table("case", "state", "reason", "runtime s", *cli_compute.CASE_HEADERS, "label", *metric_names,
                   "detail")
    for case in cases:
        rows = case.get("metrics") or [{}]
        for row in rows:
            cells = [case["case"], case["state"], case.get("reason") or "",
                     f"{case['runtime_seconds']:.1f}" if case.get("runtime_seconds") is not None else "",
                     *cli_compute.case_cells(case), str(row.get("label") or ""),
                     *[_fmt(row.get(m)) for m in metric_names], case.get("detail") or ""]
            table.add_row(*map(plain, cells))
    console.print(table)


def _table(*headers: str, title: str | None = None) -> Table:
    """A table whose headers and title are shown as written; add its rows as ``plain`` texts."""
    table = Table(title=plain(title) if title else None)
    for header in headers:
        table.add_column(plain(header))
    return table


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command(name="try")
@fails_cleanly
def try_(image: str, challenge: Challenge, phase: PhaseOpt,
         case: Annotated[list[str] | None, typer.Option("--case")] = None,
         model: Annotated[Path | None, typer.Option(
             "--model", help="a model tarball or folder, mounted read-only at /opt/ml/model")] = None):
    """Run an image over a phase's cases locally, with the platform's runner and checks.

    Nothing is written to the database.
    """
    from medarena.services import local

    with _progress() as progress:
        task = progress.add_task("cases", total=None)
        rows = local.try_image(_settings(), image, challenge, phase, case,
                                   on_progress=lambda d, t: progress.update(task, completed=d, total=t), model=model)
    _print_case_table(rows)
    failed = [r for r in rows if r["state"] != JobState.SUCCEEDED]
    if failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------- scoring without containers

@app.command()
@fails_cleanly
def evaluate(
    task: Annotated[str, typer.Argument(help="segmentation, detection, classification, registration, fusion")],
    reference: Annotated[Path, typer.Option(help="a reference file or folder")],
    prediction: Annotated[Path, typer.Option(help="a prediction file or folder")],
    config: Annotated[Path | None, typer.Option(help="YAML or JSON file of task settings")] = None,
    output: Annotated[Path | None, typer.Option(help="write the JSON result here")] = None,
    labels: Annotated[str | None, typer.Option(help="1,2 or liver=1,tumor=2")] = None,
    metrics: Annotated[str | None, typer.Option(help="comma-separated, e.g. dice,hd95,nsd@2")] = None,
    convention: Annotated[str | None, typer.Option()] = None,
    iou: Annotated[float | None, typer.Option(help="IoU threshold of a detection hit")] = None,
    score_threshold: Annotated[float | None, typer.Option(help="score threshold of a detection")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value (value as JSON)")] = None,
):
    """Score prediction files against reference files (no container, no database)."""
    import yaml

    from medarena.services.offline import EvaluationSetupError, build_settings, evaluate_files, write_json

    base = {}
    if config:
        try:
            base = yaml.safe_load(config.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise EvaluationSetupError(f"{config}: cannot read settings ({exc})") from None
        if not isinstance(base, dict):
            raise EvaluationSetupError(f"{config}: expected a mapping of settings, found {type(base).__name__}")
    options = {"labels": _parse_labels(labels) if labels else None,
               "metrics": [m.strip() for m in metrics.split(",")] if metrics else None,
               "convention": convention, "iou_threshold": iou, "score_threshold": score_threshold}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise EvaluationSetupError(f"--set {item}: expected key=value")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    settings = build_settings(task, base, options)
    with _progress(transient=True) as progress:
        bar = progress.add_task("cases", total=None)
        result = evaluate_files(task, reference, prediction, settings, on_case=lambda c: progress.advance(bar))
    _print_evaluation(result)
    if output:
        write_json(result, output)
        console.print(plain(f"wrote {output}"))
    if result["errors"]:
        raise typer.Exit(1)


def _parse_labels(text: str) -> dict[str, int]:
    from medarena.services.offline import EvaluationSetupError

    labels = {}
    for part in text.split(","):
        name, _, value = part.strip().rpartition("=")
        try:
            labels[name or value] = int(value)
        except ValueError:
            raise EvaluationSetupError(f"--labels: {part!r} is not an integer label") from None
    return labels


def _print_evaluation(result: dict) -> None:
    cases = result["cases"]
    names = [k for k in dict.fromkeys(k for row in cases for k in row) if k not in ("case", "label")]
    table = _table("case", "label", *names, title=f"{result['task']}: {len({r['case'] for r in cases})} cases")
    for row in cases:
        table.add_row(*map(plain, [row["case"], str(row.get("label") or ""), *[_fmt(row.get(n)) for n in names]]))
    console.print(table)
    pooled = {k: v for k, v in result["dataset"].items() if isinstance(v, (int, float))}
    if pooled:
        console.print(plain("  ".join(f"{k}={v:.4g}" for k, v in pooled.items())))
    for error in result["errors"]:
        err.print(Text.assemble(plain(f"case {error['case']}:", "red"), " ", plain(error["error"])))
    for note in result["notes"]:
        console.print(plain(f"case {note['case']}: {note['note']}"))


# ---------------------------------------------------------------- ranking and dashboard

@app.command()
@fails_cleanly
def rank(challenge: Challenge, phase: PhaseOpt,
         method: Annotated[str | None, typer.Option(
             help="aggregate-then-rank, rank-then-aggregate or test-based")] = None,
         bootstrap: Annotated[int | None, typer.Option(help="bootstrap resamples")] = None,
         output: Annotated[Path | None, typer.Option(help="write the ranking report (CSV, PNG, HTML) here")] = None):
    """Rank a phase (no algorithm or evaluation reruns) and optionally export the report."""
    from medarena.services import local

    ranking, files = local.rank(_settings(), challenge, phase, method, bootstrap, output)
    shown = [c for c in ranking.columns if c in ("submission", "rank", "score", "n_missing", "rank_lo", "rank_hi")
             or c.endswith("_aggregate")]
    table = _table(*shown)
    for row in ranking[shown].itertuples(index=False):
        table.add_row(*[plain(_fmt(v)) for v in row])
    console.print(table)
    if ranking.attrs.get("note"):
        console.print(plain(ranking.attrs["note"]))
    for path in files:
        console.print(plain(f"wrote {path}"))


@app.command()
def dashboard(port: int = 8501, address: str = "127.0.0.1"):
    """Serve the Streamlit dashboard until stopped."""
    from medarena.dashboard import launch

    process = launch(port=port, address=address)
    console.print(plain(f"dashboard: http://{address}:{port}  (Ctrl-C stops it)"))
    try:
        process.wait()
    except KeyboardInterrupt:
        process.terminate()


@app.command()
@fails_cleanly
def demo(port: int = 8501, serve: Annotated[bool, typer.Option(help="start the dashboard at the end")] = True,
         task: Annotated[str, typer.Option(
             help="segmentation, detection, classification, registration or fusion")] = "segmentation",
         cases: Annotated[int | None, typer.Option(help="synthetic cases to generate (default: the demo's own)")
                          ] = None,
         service: Annotated[bool, typer.Option(
             help="as a service: API server, worker and dashboard; the examples submitted through the API")] = True,
         api_port: int = 8000):
    """A demo challenge end to end. By default as a service: the API server, a worker and the
    dashboard, demo accounts, and the example algorithms submitted through the API, until Ctrl-C.
    --no-service: create, ingest, submit, run and print the leaderboard in this process, then the
    dashboard (--no-serve: stop after the leaderboard)."""
    from medarena.services import demo as demo_module

    if service and serve:
        from medarena import cli_demo

        return cli_demo.run(api_port=api_port, dashboard_port=port, task=task, cases=cases)
    demo_module.prepare(_settings(), console, task, cases)
    _run_with_progress(None)
    demo_module.report(_settings(), console, task)
    if serve:
        dashboard(port=port)


@contextlib.contextmanager
def _progress(transient: bool = False):
    """A progress bar on stderr that is cleared when an error ends the command, so that the error
    is the last and only line there."""
    progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=transient)
    progress.start()
    try:
        yield progress
    except BaseException:
        progress.live.transient = True
        progress.live.stop()  # not progress.stop(), which adds an empty line where stderr is no terminal
        raise
    progress.stop()


from medarena import cli_compute, cli_remote  # noqa: E402 - the server and the participant's commands against it
from medarena.cli_accounts import tokens_app, users_app  # noqa: E402

app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.command()(cli_remote.serve)
app.command()(cli_remote.login)
app.command()(cli_remote.logout)
app.command()(cli_compute.compute)

if __name__ == "__main__":
    app()
