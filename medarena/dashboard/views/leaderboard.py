"""A phase's leaderboard with its ranking stability, the submissions in progress or failed, and
links to each submission: as far as the viewer may see them."""

import pandas as pd
import streamlit as st

from medarena.dashboard import charts, data, ui
from medarena.display import visible

viewer = ui.current()
challenges = {c.slug: c for c in data.list_challenges(viewer)}
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

board = data.leaderboard(viewer, phase.challenge, phase.slug)
if board is None:
    st.info("The leaderboard of this phase is not public.")
else:
    if not phase.leaderboard_public:
        st.warning("This leaderboard is hidden: only the challenge's organizers see it.")
    if not board.empty:
        top = board.iloc[0]
        lead = "Winner" if phase.state == "closed" else "Leading"
        st.subheader(f"{lead}:")
        st.text(visible(str(top["participant"])))
        st.caption(f"rank {top['rank']} · score {ui.number(top['score'])} · submission #{top['submission']}")
        podium = board.head(10)[["rank", "participant", "score", "rank interval", "submitted"]]
        podium = podium.assign(score=podium["score"].map(ui.number), submitted=podium["submitted"].map(ui.when))
        st.dataframe(ui.plain_frame(podium), hide_index=True)
        st.subheader("All columns")
        st.dataframe(ui.plain_frame(submission_links(board)), hide_index=True, column_config={"submission": LINK})
        stability = data.rank_stability(viewer, phase.challenge, phase.slug)
        if stability is not None:
            blobs, note = stability
            st.subheader("Ranking stability")
            st.caption("Each submission's rank over the bootstrap resamples of the cases; a dot's size is "
                       "the share of resamples with that rank. Rank intervals are the 2.5–97.5 % range.")
            if note:
                st.caption(note)
            if not blobs.empty:
                st.altair_chart(charts.rank_blobs(blobs), width="stretch")
    else:
        unranked = data.unranked_results(viewer, phase.challenge, phase.slug)
        if unranked is None or unranked.empty:
            st.info("No finished submissions yet.")
        else:
            st.warning("This phase has not been ranked yet; these are the finished submissions with "
                       "the means of their metrics.")
            st.dataframe(ui.plain_frame(submission_links(unranked)), hide_index=True,
                         column_config={"submission": LINK})
    values = data.phase_case_values(viewer, phase.challenge, phase.slug) if not board.empty else None
    if values is not None and not values.empty:
        values["participant"] = [f"{visible(who)} #{sid}" for who, sid in
                                 zip(values["participant"], values["submission"], strict=True)]
        st.subheader("Per-case values")
        metric = st.selectbox("Metric", list(dict.fromkeys(values["column"])), format_func=visible)
        st.altair_chart(charts.leaderboard_distribution(values, metric), width="stretch")

unfinished = data.unfinished_submissions(viewer, phase.challenge, phase.slug)
st.subheader("Submissions in progress or failed")
if unfinished.empty:
    st.caption("None that you can see.")
else:
    st.dataframe(ui.plain_frame(submission_links(unfinished)), hide_index=True, column_config={"submission": LINK})

usage = data.phase_compute(viewer, phase.challenge, phase.slug)  # None: not an organizer
if usage is not None:
    table, budget = usage
    st.subheader("Compute used (organizers)")
    st.dataframe(ui.plain_frame(table), hide_index=True, column_config={
        name: st.column_config.NumberColumn(format="%.1f") for name in table.columns[2:]})
    limits = [f"{name.replace('_', ' ')}: {hours:g}" for name, hours in budget.items() if hours]
    st.caption("Compute budget: " + ("; ".join(limits) if limits else "none"))

everything = data.phase_submissions(viewer, phase.challenge, phase.slug)
if not everything.empty:
    st.subheader("Open a submission")
    labels = {row.submission: f"#{row.submission} · {visible(row.participant)} · {row.state} · "
                              f"{ui.when(row.submitted)}" for row in everything.itertuples()}
    chosen = st.selectbox("Submission", list(labels), format_func=labels.get)
    st.page_link(ui.SUBMISSION, label=f"Open submission #{chosen}", icon=ui.ICONS["submission"],
                 query_params={"id": str(chosen)})
