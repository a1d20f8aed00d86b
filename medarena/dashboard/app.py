"""The medarena dashboard: challenges, phase leaderboards, submissions and case images.

Run it with ``medarena dashboard`` (or ``streamlit run`` on this file). Each view has its own URL:
``/`` the challenges, ``/leaderboard?challenge=C&phase=P``, ``/submission?id=N`` and
``/case?submission=N&case=NAME``. A viewer logs in (sidebar) with their account and sees what the access rules of
:mod:`medarena.services.access` let them; anonymous viewers see what is public. It reads through
the services and the case store, and writes only logins and logouts.
"""

import streamlit as st

from medarena.dashboard import ui

st.set_page_config(page_title="medarena", page_icon=":material/radiology:", layout="wide")

ui.login_box(ui.viewer())

pages = st.navigation([
    st.Page(ui.CHALLENGES, title="Challenges", icon=ui.ICONS["challenges"], url_path="challenges", default=True),
    st.Page(ui.LEADERBOARD, title="Leaderboards", icon=ui.ICONS["leaderboard"], url_path="leaderboard"),
    st.Page(ui.SUBMISSION, title="Submission", icon=ui.ICONS["submission"], url_path="submission"),
    st.Page(ui.CASE, title="Case images", icon=ui.ICONS["case"], url_path="case"),
])
pages.run()
