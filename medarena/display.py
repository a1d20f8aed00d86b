"""Text that came from a participant or an organizer, made safe to show.

Logs, names, comments, reasons, titles and file names are data: they reach a terminal as
:class:`rich.text.Text` (never as console markup, so ``[bold]`` prints as written), and a web page
as escaped Markdown. Characters that would act on the screen instead of being shown (ESC and the
other C0/C1 controls, DEL, bidirectional overrides, zero-width and other format characters, line
and paragraph separators, lone surrogates from undecodable bytes) are written the way Python
writes them in a string literal (``\\x1b``, ``\\u202e``, ``\\udcff``). The stored value is never
changed: only what is shown.
"""

from __future__ import annotations

import json
import re
import unicodedata

from rich.text import Text

# Categories shown as escapes: controls, format characters (bidi overrides, zero-width), line and
# paragraph separators, and surrogates (undecodable bytes under surrogateescape).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e]")
# CommonMark lets a backslash escape any ASCII punctuation character.
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: object, *, lines: bool = False) -> str:
    """``text`` with every character that does not print as itself written as an escape.

    With ``lines`` (logs), line breaks and tabs are kept and a CR before a line break is dropped;
    otherwise the result is always a single line.
    """
    text = str(text)
    if lines:
        text = text.replace("\r\n", "\n")

    def replace(match: re.Match[str]) -> str:
        char = match.group()
        if lines and char in "\n\t":
            return char
        return _escape(char) if unicodedata.category(char) in _HIDDEN_CATEGORIES else char

    return _NOT_PLAIN_ASCII.sub(replace, text)


def json_text(data: object) -> str:
    """``data`` as indented JSON that round-trips exactly, with every hidden character written as a
    JSON escape (``\\u001b``, ``\\u202e``) and every other character as itself."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)

    def replace(match: re.Match[str]) -> str:
        char = match.group()
        if char == "\n" or unicodedata.category(char) not in _HIDDEN_CATEGORIES:
            return char  # line breaks inside strings are already escaped by json.dumps
        encoded = char.encode("utf-16-le", "surrogatepass")
        return "".join(f"\\u{int.from_bytes(encoded[i:i + 2], 'little'):04x}" for i in range(0, len(encoded), 2))

    return _NOT_PLAIN_ASCII.sub(replace, text)


def plain(text: object, style: str = "", *, lines: bool = False) -> Text:
    """A Rich Text of ``text`` shown as written: no markup, no emoji codes, no highlighting."""
    return Text(visible(text, lines=lines), style=style, no_wrap=False)


def markdown_literal(text: object) -> str:
    """``text`` for a Markdown-rendering element (a Streamlit title, caption, label...), escaped so
    that it renders as the characters it holds: no emphasis, links, headings, HTML, colour or
    icon directives, emoji codes or math."""
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", visible(text))
    # A colon next to a word character could still start an emoji code (``:smile:``) after the
    # escapes are read; a word joiner (U+2060) after it stops that and does not show.
    return escaped.replace("\\:", "\\:\u2060")
