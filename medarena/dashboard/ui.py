"""Small helpers shared by the dashboard's pages: settings, query parameters, formatting."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from medarena.dashboard.data import Viewer
from medarena.display import markdown_literal, visible
from medarena.errors import MedarenaError, Unauthenticated
from medarena.services import accounts
from medarena.services.settings import Settings, load_settings

CHALLENGES = "views/challenges.py"
LEADERBOARD = "views/leaderboard.py"
SUBMISSION = "views/submission.py"
CASE = "views/case.py"

T = TypeVar("T")


def settings() -> Settings:
    return load_settings()


TOKEN_KEY = "medarena_token"
IDENTITY_KEY = "medarena_identity"


def viewer() -> Viewer:
    """Who is looking: the identity behind the token kept in the session, checked again on every
    run, so that a revoked token or a disabled account stops counting at once."""
    config = settings()
    token = st.session_state.get(TOKEN_KEY)
    identity = None
    if token:
        try:
            identity = accounts.authenticate(config, token)
        except Unauthenticated:
            forget_login()
    st.session_state[IDENTITY_KEY] = identity
    return Viewer(config, identity)


def current() -> Viewer:
    """The viewer the app checked at the start of this run (see :func:`viewer`)."""
    return Viewer(settings(), st.session_state.get(IDENTITY_KEY))


def forget_login() -> None:
    st.session_state.pop(TOKEN_KEY, None)
    st.session_state[IDENTITY_KEY] = None


def client_address() -> str:
    """The browser's address for the login throttle (one bucket for all when it is not known)."""
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001  (no server behind the script: a test run)
        address = None
    return f"dashboard:{address[:45] if isinstance(address, str) and address else 'unknown'}"


def login_box(who: Viewer) -> None:
    """The sidebar's login form, or the user's name with a logout button."""
    with st.sidebar:
        if who.identity is not None:
            st.text(visible(f"Logged in as {who.identity.username}") + (" (admin)" if who.identity.is_admin else ""))
            if st.button("Log out", key="logout"):
                try:
                    accounts.logout(who.settings, who.identity)
                finally:
                    forget_login()
                st.rerun()
            return
        with st.form("login", clear_on_submit=False):
            st.markdown("**Log in**")
            username = st.text_input("User name", key="login_user")
            password = st.text_input("Password", type="password", key="login_password")
            submitted = st.form_submit_button("Log in")
        if submitted:
            try:
                token = accounts.login(who.settings, username.strip(), password, client_address())
            except MedarenaError as exc:
                st.error(str(exc))
                return
            st.session_state[TOKEN_KEY] = token
            st.rerun()


def param(name: str) -> str | None:
    value = st.query_params.get(name)
    return value or None


def int_param(name: str) -> int | None:
    value = param(name)
    return int(value) if value and value.isdigit() else None


def choose(label: str, options: Sequence[T], name: str,
           format_func: Callable[[T], str] = str) -> T | None:
    """A select box kept in step with the query parameter ``name``, so the URL opens the same view."""
    if not options:
        return None
    values = [str(o) for o in options]
    current = param(name)
    index = values.index(current) if current in values else 0
    chosen = st.selectbox(label, options, index=index, format_func=lambda o: visible(format_func(o)))
    if chosen is not None and param(name) != str(chosen):
        st.query_params[name] = str(chosen)
    return chosen


def md(text: Any) -> str:
    """A participant's or organizer's text for an element that renders Markdown (titles, captions,
    labels, table cells): shown as the characters it holds."""
    return markdown_literal(text)


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A table whose text cells and column names show control characters as escapes."""
    shown = frame.rename(columns=lambda c: visible(c) if isinstance(c, str) else c)
    for column in shown.columns:
        if pd.api.types.is_object_dtype(shown[column]) or pd.api.types.is_string_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: visible(v) if isinstance(v, str) else v)
    return shown


def when(value: dt.datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "–"


def number(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if not start or not end:
        return "–"
    seconds = int((end - start).total_seconds())
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# Material icons come with Streamlit's own font, so they render where no emoji font is installed.
ICONS = {"challenges": ":material/flag:", "leaderboard": ":material/leaderboard:",
         "submission": ":material/inventory_2:", "case": ":material/radiology:",
         "failed": ":material/error:"}
