"""One submission: its header, per-case states and metrics, failures with logs, data-set metrics."""

import streamlit as st

from medarena.dashboard import charts, data, ui
from medarena.display import visible

url = ui.settings().database_url
submission_id = ui.int_param("id")
if submission_id is None:
    st.title("Submission")
    chosen = st.number_input("Submission id", min_value=1, step=1, value=None)
    if chosen is None:
        st.info("Open a submission from a phase leaderboard, or enter its id.")
        st.stop()
    submission_id = int(chosen)
    st.query_params["id"] = str(submission_id)

info = data.submission_info(url, submission_id)
if info is None:
    st.title("Submission")
    st.error(f"There is no submission #{submission_id}.")
    st.stop()

rules = info.rules
st.page_link(ui.LEADERBOARD, label=f"{ui.md(rules.challenge_title)}: {ui.md(rules.title)}",
             icon=ui.ICONS["leaderboard"], query_params={"challenge": info.challenge, "phase": info.phase})
st.title(f"Submission #{info.id} · {ui.md(info.participant)}")
st.markdown(f"**State:** {ui.md(info.state)}")
left, right = st.columns(2)
left.markdown(f"**Image:** {ui.md(info.image)}  \n**Digest:** {ui.md(info.image_digest)}"
              + (f"  \n**Model digest:** {ui.md(info.model_digest)}" if info.model_digest else "")
              + (f"  \n**Comment:** {ui.md(info.comment)}" if info.comment else ""))
if info.evaluation_state == "failed":
    st.warning("The phase's evaluation container failed on this submission: the organizers have been shown "
               "why, and it does not count against the participant.")
right.markdown(f"**Submitted:** {ui.when(info.created_at)}  \n**Started:** {ui.when(info.started_at)}  \n"
               f"**Finished:** {ui.when(info.finished_at)}  \n"
               f"**Run time:** {ui.duration(info.started_at, info.finished_at)}")
if info.job_states:
    counts = st.columns(len(data.JOB_STATES))
    for column, state in zip(counts, data.JOB_STATES, strict=True):
        column.metric(state, info.job_states.get(state, 0))

cases = data.case_results(url, info.id)
st.subheader("Cases")
if cases.empty:
    st.caption("No jobs yet: the scheduler has not expanded this submission into cases.")
else:
    if not rules.case_results_public:
        st.caption("Per-case metric values of this phase are not public; the job states are.")
    st.dataframe(ui.plain_frame(cases), hide_index=True, column_config={
        "runtime (s)": st.column_config.NumberColumn(format="%.1f")})

failures = data.failed_cases(url, info.id)
if failures:
    st.subheader(f"Failed cases ({len(failures)})")
    for failure in failures:
        with st.expander(f"{ui.md(failure.case)}: {ui.md(failure.reason or 'failed')}", icon=ui.ICONS["failed"]):
            st.markdown(f"**Reason:** {ui.md(failure.reason)}")
            if failure.detail:
                st.code(visible(failure.detail, lines=True), language=None)
            if rules.case_results_public:
                st.markdown("**stdout** (tail)")
                st.code(visible(failure.stdout_tail, lines=True) or "(empty)", language=None)
                st.markdown("**stderr** (tail)")
                st.code(visible(failure.stderr_tail, lines=True) or "(empty)", language=None)
            else:
                st.caption("Logs are hidden in this phase, whose case results are not public.")

if rules.leaderboard_public:
    numbers, curves = data.split_dataset_metrics(info.dataset_metrics)
    if numbers or curves:
        st.subheader("Data-set metrics")
        if numbers:
            tiles = st.columns(min(len(numbers), 6))
            for i, (name, value) in enumerate(numbers.items()):
                tiles[i % len(tiles)].metric(ui.md(name), ui.number(value))
        if curves:
            plots = st.columns(min(len(curves), 3))
            for i, (name, points) in enumerate(curves.items()):
                plots[i % len(plots)].altair_chart(charts.curve(name, points))
    means = data.aggregate_means(info.aggregates)
    if means:
        st.subheader("Means over cases")
        st.dataframe([{"metric": visible(k), "mean": v} for k, v in means.items()], hide_index=True)
else:
    st.caption("Scores of this phase are not public.")

values = data.metric_values(url, info.id)
if not values.empty:
    st.subheader("Per-case values")
    st.altair_chart(charts.per_case_distribution(values))

if rules.case_results_public and not cases.empty:
    st.subheader("Case images")
    case = st.selectbox("Case", list(cases["case"]), format_func=visible)
    st.page_link(ui.CASE, label=f"Open case {ui.md(case)}", icon=ui.ICONS["case"],
                 query_params={"submission": str(info.id), "case": case})
