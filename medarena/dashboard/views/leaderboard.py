"""A phase's leaderboard, its submissions in progress or failed, and links to each submission."""

import pandas as pd
import streamlit as st

from medarena.dashboard import charts, data, ui
from medarena.display import visible

url = ui.settings().database_url
challenges = {c.slug: c for c in data.list_challenges(url)}
if not challenges:
    st.title("Leaderboards")
    st.info("No challenges yet.")
    st.stop()

pick_challenge, pick_phase = st.columns(2)
with pick_challenge:
    slug = ui.choose("Challenge", list(challenges), "challenge", lambda s: challenges[s].title)
phases = {p.slug: p for p in challenges[slug].phases}
with pick_phase:
    phase_slug = ui.choose("Phase", list(phases), "phase", lambda s: phases[s].title)
phase = phases[phase_slug]

st.title(f"{ui.md(phase.challenge_title)}: {ui.md(phase.title)}")
st.caption(f"Phase {phase.state} · opens {ui.when(phase.opens)} · closes {ui.when(phase.closes)} · "
           f"{phase.cases} cases · {phase.submissions} submissions")


def submission_links(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(submission=[f"submission?id={sid}" for sid in frame["submission"]])


LINK = st.column_config.LinkColumn("submission", display_text=r"submission\?id=(\d+)")

if not phase.leaderboard_public:
    st.info("The leaderboard of this phase is not public.")
else:
    board = data.leaderboard(url, phase.challenge, phase.slug)
    if not board.empty:
        top = board.iloc[0]
        lead = "Winner" if phase.state == "closed" else "Leading"
        st.markdown(f"### {lead}: {ui.md(top['participant'])}")
        st.caption(f"rank {top['rank']} · score {ui.number(top['score'])} · submission #{top['submission']}")
        podium = board.head(10)[["rank", "participant", "score", "rank interval", "submitted"]]
        podium = podium.assign(participant=podium["participant"].map(ui.md), score=podium["score"].map(ui.number),
                               submitted=podium["submitted"].map(ui.when))
        st.table(podium.set_index("rank"))
        st.subheader("All columns")
        st.dataframe(ui.plain_frame(submission_links(board)), hide_index=True, column_config={"submission": LINK})
    else:
        unranked = data.unranked_results(url, phase.challenge, phase.slug)
        if unranked.empty:
            st.info("No finished submissions yet.")
        else:
            st.warning("This phase has not been ranked yet; these are the finished submissions with "
                       "the means of their metrics.")
            st.dataframe(ui.plain_frame(submission_links(unranked)), hide_index=True,
                         column_config={"submission": LINK})
    if phase.case_results_public and not board.empty:
        values = data.phase_case_values(url, phase.challenge, phase.slug)
        if not values.empty:
            values["participant"] = [f"{visible(who)} #{sid}" for who, sid in
                                     zip(values["participant"], values["submission"], strict=True)]
            st.subheader("Per-case values")
            metric = st.selectbox("Metric", list(dict.fromkeys(values["column"])), format_func=visible)
            st.altair_chart(charts.leaderboard_distribution(values, metric), width="stretch")

st.subheader("Submissions in progress or failed")
unfinished = data.unfinished_submissions(url, phase.challenge, phase.slug)
if unfinished.empty:
    st.caption("None.")
else:
    st.dataframe(ui.plain_frame(submission_links(unfinished)), hide_index=True, column_config={"submission": LINK})

everything = data.phase_submissions(url, phase.challenge, phase.slug)
if not everything.empty:
    st.subheader("Open a submission")
    labels = {row.submission: f"#{row.submission} · {visible(row.participant)} · {row.state} · "
                              f"{ui.when(row.submitted)}" for row in everything.itertuples()}
    chosen = st.selectbox("Submission", list(labels), format_func=labels.get)
    st.page_link(ui.SUBMISSION, label=f"Open submission #{chosen}", icon=ui.ICONS["submission"],
                 query_params={"id": str(chosen)})
