"""Participant and organizer text is data: the terminal gets it as written, control characters made
visible, markup never interpreted; what is stored is never changed."""

from __future__ import annotations

import html
import json
import re

import pytest
from markdown_it import MarkdownIt
from sqlalchemy import select
from typer.testing import CliRunner

from medarena.cli import app
from medarena.display import json_text, markdown_literal, visible
from medarena.platform import organizer
from medarena.platform.database import Case, Challenge, Job, MetricValue, Submission, session_scope
from tests.platform.challenge_data import write_definition

runner = CliRunner()

# Console markup, Markdown, HTML, Streamlit directives, terminal escapes (clear screen, window
# title, bell, carriage return, CSI as one C1 byte), a bidi override.
HOSTILE = ("[/x] [bold red]boom[/] **b** <b>h</b> :red[r] :smile: :material/home: $x^2$ [l](http://e.x) "
           "~~s~~ # \x1b[2J\x1b]0;title\x07 \rover \u202eevil\x9b1m")
HOSTILE_SHOWN = ("[/x] [bold red]boom[/] **b** <b>h</b> :red[r] :smile: :material/home: $x^2$ [l](http://e.x) "
                 "~~s~~ # \\x1b[2J\\x1b]0;title\\x07 \\x0dover \\u202eevil\\x9b1m")
LOG = "loading [/x]\n[bold red]failed[/bold red]\tstep 3\r\n\x1b[31mred\x1b[0m\nlast line [/]"
LOG_SHOWN = "loading [/x]\n[bold red]failed[/bold red]\tstep 3\n\\x1b[31mred\\x1b[0m\nlast line [/]"
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@pytest.mark.parametrize("text, shown", [
    (HOSTILE, HOSTILE_SHOWN),
    ("Müller Ünal 東京 ✓", "Müller Ünal 東京 ✓"),  # letters of every script stay as they are
    ("a\tb\nc", "a\\x09b\\x0ac"),
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("line\u2028sep \U000e0041", "line\\u2028sep \\U000e0041"),
    (b"bad \xff byte".decode(errors="surrogateescape"), "bad \\udcff byte"),  # an undecodable file name
])
def test_visible_writes_every_hidden_character_as_an_escape(text, shown):
    assert visible(text) == shown


def test_json_text_round_trips_and_shows_no_hidden_character():
    data = {"name": HOSTILE + " \U000e0041 Müller", "bad": b"\xff".decode(errors="surrogateescape")}
    text = json_text(data)
    assert json.loads(text) == data
    assert not RAW_CONTROLS.search(text)
    assert "\\u202e" in text and "\\udb40\\udc41" in text and "Müller" in text


def test_visible_keeps_the_lines_of_a_log():
    assert visible(LOG, lines=True) == LOG_SHOWN


def test_markdown_literal_renders_as_the_characters_it_holds():
    """An independent CommonMark renderer (markdown-it-py) turns the escaped text into one
    paragraph of exactly the visible characters: no emphasis, link, HTML or heading. Colons carry a
    word joiner (U+2060) so that no emoji, icon or colour directive can start after unescaping."""
    text = "# " + HOSTILE + " 1. <script>x</script> `code` | a | b | ___ > quote \\*"
    rendered = MarkdownIt("commonmark").enable("strikethrough").enable("table").render(markdown_literal(text))
    expected = visible(text).replace(":", ":\u2060")
    assert rendered == f"<p>{html.escape(expected, quote=False)}</p>\n"
    assert not re.search(r":[\w+-][\w+-]*:", html.unescape(rendered))  # Streamlit's emoji pattern


@pytest.fixture
def hostile(home, tmp_path):
    """A database holding hostile text in every field the command line prints."""
    organizer.create_challenge(home, write_definition(tmp_path / "toy.yaml"))
    with session_scope(home.database_url) as session:
        challenge = session.scalar(select(Challenge))
        challenge.title = HOSTILE
        phase = challenge.phases[0]
        case = Case(name=HOSTILE, checksum="0" * 64, info={})
        phase.cases.append(case)
        submission = Submission(phase=phase, participant=HOSTILE, image="algorithm.tar", comment=HOSTILE,
                                image_digest="sha256:" + "0" * 64, state="failed")
        job = Job(submission=submission, case=case, state="failed", reason="exit_code", detail=HOSTILE,
                  stdout_tail=LOG, stderr_tail=LOG, runtime_seconds=1.5)
        job.metrics.append(MetricValue(label=HOSTILE, metric="dice", value=0.5))
        session.add(submission)
        session.flush()
        return home, submission.id


def shows_as_data(args: list[str], home) -> str:
    result = runner.invoke(app, args, env={"MEDARENA_HOME": str(home.home), "COLUMNS": "2000"})
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    output = result.stdout + result.stderr
    assert not RAW_CONTROLS.search(output), RAW_CONTROLS.search(output)
    return output


def test_results_and_logs_print_markup_and_escapes_as_written(hostile):
    home, submission_id = hostile
    table = shows_as_data(["results", str(submission_id)], home)
    assert table.count(HOSTILE_SHOWN) == 3  # the case, the label and the detail
    logs = shows_as_data(["results", str(submission_id), "--logs"], home)
    assert logs.count(LOG_SHOWN.expandtabs(8)) == 2  # stdout and stderr (a terminal shows tabs as spaces)
    assert f"{HOSTILE_SHOWN}: exit_code" in logs  # the rule over the case's logs


def test_status_and_challenge_listing_print_names_as_written(hostile):
    home, _ = hostile
    assert HOSTILE_SHOWN in shows_as_data(["status"], home)
    assert HOSTILE_SHOWN in shows_as_data(["challenge", "list"], home)


def test_challenge_show_prints_case_names_without_raw_controls(hostile):
    home, _ = hostile
    shown = json.loads(shows_as_data(["challenge", "show", "toy"], home))
    assert shown["cases"]["test"] == [HOSTILE]  # valid JSON that round-trips exactly


def test_stored_text_is_unchanged(hostile):
    home, submission_id = hostile
    shows_as_data(["results", str(submission_id), "--logs"], home)
    with session_scope(home.database_url) as session:
        submission = session.get(Submission, submission_id)
        assert submission.participant == HOSTILE and submission.jobs[0].stderr_tail == LOG


def test_an_error_naming_hostile_text_is_one_escaped_line(hostile):
    home, _ = hostile
    result = runner.invoke(app, ["rank", "-c", "toy", "-p", "\x1b[2J[/x]"],
                           env={"MEDARENA_HOME": str(home.home), "COLUMNS": "80"})
    assert result.exit_code == 1
    assert result.stderr == "error: challenge 'toy' has no phase '\\x1b[2J[/x]'; phases: test\n"
