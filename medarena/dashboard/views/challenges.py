"""The challenges: their phases, open or closed, with case and submission counts."""

import pandas as pd
import streamlit as st

from medarena.dashboard import data, ui
from medarena.display import visible

st.title("Challenges")
challenges = data.list_challenges(ui.current())
if not challenges:
    st.info("No challenges yet. An organizer creates one with `medarena challenge create FILE`.")

for challenge in challenges:
    st.header(ui.md(challenge.title))
    st.caption(f"`{challenge.slug}`")
    if challenge.description:
        st.text(visible(challenge.description, lines=True))
    phases = pd.DataFrame([{
        "phase": ui.md(p.title), "state": p.state, "opens": ui.when(p.opens), "closes": ui.when(p.closes),
        "cases": p.cases, "submissions": p.submissions,
        "leaderboard": "public" if p.leaderboard_public else "hidden",
        "case results": "public" if p.case_results_public else "hidden",
    } for p in challenge.phases])
    st.table(phases.set_index("phase"))
    links = st.columns(max(len(challenge.phases), 1))
    for column, phase in zip(links, challenge.phases, strict=False):
        with column:
            st.page_link(ui.LEADERBOARD, label=f"Leaderboard: {ui.md(phase.title)}", icon=ui.ICONS["leaderboard"],
                         query_params={"challenge": challenge.slug, "phase": phase.slug})
