"""One submission as the viewer may see it: its header, per-case states and metrics, failures
with logs (and the platform log, for organizers), data-set metrics."""

import streamlit as st

from medarena.dashboard import charts, data, ui
from medarena.display import visible
from medarena.services.states import EvaluationState

viewer = ui.current()
submission_id = ui.int_param("id")
if submission_id is None:
    st.title("Submission")
    chosen = st.number_input("Submission id", min_value=1, step=1, value=None)
    if chosen is None:
        st.info("Open a submission from a phase leaderboard, or enter its id.")
        st.stop()
    submission_id = int(chosen)
    st.query_params["id"] = str(submission_id)

info = data.submission_info(viewer, submission_id)
if info is None:  # absent, or not the viewer's to see: the same answer
    st.title("Submission")
    st.error(f"There is no submission #{submission_id}.")
    st.stop()

rules, view = info.rules, info.view
st.page_link(ui.LEADERBOARD, label=f"{ui.md(rules.challenge_title)}: {ui.md(rules.title)}",
             icon=ui.ICONS["leaderboard"], query_params={"challenge": info.challenge, "phase": info.phase})
st.title(f"Submission #{info.id}")
st.text(visible(f"Participant: {info.participant}") + ("  (yours)" if view.owner else ""))
st.markdown(f"**State:** {ui.md(info.state)}")
left, right = st.columns(2)
if view.details:
    left.text(visible(f"Image: {info.image}\nDigest: {info.image_digest}"
                      + (f"\nModel digest: {info.model_digest}" if info.model_digest else "")
                      + (f"\nComment: {info.comment}" if info.comment else ""), lines=True))
if info.evaluation_state == EvaluationState.FAILED:
    st.warning("The phase's evaluation container failed on this submission: the organizers have been shown "
               "why, and it does not count against the participant.")
right.markdown(f"**Submitted:** {ui.when(info.created_at)}  \n**Started:** {ui.when(info.started_at)}  \n"
               f"**Finished:** {ui.when(info.finished_at)}  \n"
               f"**Run time:** {ui.duration(info.started_at, info.finished_at)}")
if info.compute is not None:
    st.subheader("Compute used")
    tiles = st.columns(4)
    tiles[0].metric("CPU", f"{info.compute['cpu_seconds']:.1f} s")
    tiles[1].metric("GPU", f"{info.compute['gpu_seconds']:.1f} s")
    tiles[2].metric("Wall time (all cases)", f"{info.compute['wall_seconds']:.1f} s")
    peak = info.compute["peak_memory_bytes"]
    tiles[3].metric("Largest peak memory", "–" if peak is None else f"{peak / 2**20:.0f} MiB")
    if info.compute["measured_cases"] < info.compute["cases"]:
        st.caption(f"CPU and memory were measured for {info.compute['measured_cases']} of the "
                   f"{info.compute['cases']} cases that ran.")
if info.job_states:
    counts = st.columns(len(data.JOB_STATES))
    for column, state in zip(counts, data.JOB_STATES, strict=True):
        column.metric(state, info.job_states.get(state, 0))

cases = data.case_results(viewer, info.id)
st.subheader("Cases")
if cases.empty:
    st.caption("No jobs yet: the scheduler has not expanded this submission into cases.")
else:
    if not view.scores:
        st.caption("Per-case metric values of this phase are not public; the job states are.")
    st.dataframe(ui.plain_frame(cases), hide_index=True, column_config={
        "runtime (s)": st.column_config.NumberColumn(format="%.1f"),
        "cpu (s)": st.column_config.NumberColumn(format="%.1f"),
        "peak memory (MiB)": st.column_config.NumberColumn(format="%.0f"),
        "gpu (s)": st.column_config.NumberColumn(format="%.1f")})

failures = data.failed_cases(viewer, info.id)
if failures:
    st.subheader(f"Failed cases ({len(failures)})")
    for failure in failures:
        with st.expander(f"{ui.md(failure.case)}: {ui.md(failure.reason or 'failed')}", icon=ui.ICONS["failed"]):
            st.text(visible(f"Reason: {failure.reason}"))
            if failure.detail:
                st.code(visible(failure.detail, lines=True), language=None)
            if view.logs:
                st.text("stdout (tail)")
                st.code(visible(failure.stdout_tail, lines=True) or "(empty)", language=None)
                st.text("stderr (tail)")
                st.code(visible(failure.stderr_tail, lines=True) or "(empty)", language=None)
            elif view.owner:
                st.caption("This phase does not show participants the logs of their cases.")
            if view.platform_log:
                st.text("platform log (organizers only)")
                st.code(visible(failure.platform_log, lines=True) or "(empty)", language=None)

if view.scores:
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

values = data.metric_values(viewer, info.id)
if not values.empty:
    st.subheader("Per-case values")
    st.altair_chart(charts.per_case_distribution(values))

if not cases.empty and data.case_image_submission(viewer, info.id) is not None:
    st.subheader("Case images")
    case = st.selectbox("Case", list(cases["case"]), format_func=visible)
    st.page_link(ui.CASE, label=f"Open case {ui.md(case)}", icon=ui.ICONS["case"],
                 query_params={"submission": str(info.id), "case": case})
