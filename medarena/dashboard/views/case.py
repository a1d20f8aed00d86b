"""One case of a submission: a slice of the input image with the prediction (and, where case
results are public, the reference) drawn over it."""

import streamlit as st

from medarena.dashboard import data, images, ui

viewer = ui.current()
config = viewer.settings
submission_id = ui.int_param("submission")
found = data.case_image_submission(viewer, submission_id) if submission_id else None
if found is None:  # absent, or not the viewer's to see: the same answer
    st.title("Case images")
    st.info("Open a case from a submission's page.")
    st.stop()

info, cases = found
rules = info.rules
st.page_link(ui.SUBMISSION, label=f"Submission #{info.id}", icon=ui.ICONS["submission"],
             query_params={"id": str(info.id)})
if not cases:
    st.info("This submission has no cases yet.")
    st.stop()
case = ui.choose("Case", cases, "case")
st.title(f"Case {ui.md(case)}")

interface = rules.definition.get("interface", {})
background_sockets = (images.image_sockets(interface.get("inputs", []), ("image",))
                      or images.image_sockets(interface.get("inputs", []), images.MASK_KINDS))
inputs_url = data.inputs_store_url(config.store, info.challenge, info.phase)
if not background_sockets:
    st.info("This challenge has no image inputs to show.")
    st.stop()
socket = st.selectbox("Image", background_sockets) if len(background_sockets) > 1 else background_sockets[0]
try:
    volume = images.open_volume(inputs_url, case, socket)
except images.MissingStore as exc:
    st.info(f"The input image is not available: {ui.md(exc)}.")
    st.stop()

axis = 0
if volume.ndim == 3:
    view, position = st.columns([1, 3])
    axis = images.AXES[view.radio("View", list(images.AXES), horizontal=True)]
    count = images.slice_count(volume, axis)
    index = position.slider("Slice", 0, count - 1, count // 2) if count > 1 else 0
else:
    index = None


def overlay_layers(store_url: str, sockets: list[str], kinds: dict[str, str], source: str,
                   colours: tuple[str, ...]) -> tuple[list[images.Overlay], list[str]]:
    layers, notes = [], []
    for i, slug in enumerate(sockets):
        try:
            layer = images.open_volume(store_url, case, slug)
        except images.MissingStore:
            notes.append(f"no {source} {slug!r} stored for this case")
            continue
        if layer.shape[: volume.ndim] != volume.shape[: volume.ndim]:
            notes.append(f"{source} {slug!r} has shape {layer.shape}, the image {volume.shape}: not drawn")
            continue
        plane = images.display_plane(images.read_slice(layer, axis, index), axis, volume.ndim)
        layers.append(images.Overlay(f"{source}: {slug}", plane, kinds[slug], colours[i % len(colours)]))
    return layers, notes


outputs = interface.get("outputs", [])
references = interface.get("references", [])
kinds = {s["slug"]: s["kind"] for s in [*outputs, *references]}
prediction_url = data.prediction_store_url(config.store, info.challenge, info.phase, info.id)
predicted, notes = overlay_layers(prediction_url, images.image_sockets(outputs, images.MASK_KINDS), kinds,
                                  "prediction", images.PREDICTION_COLOURS)
reference_url = data.references_store_url(config.store, info.challenge, info.phase)
truth, more = overlay_layers(reference_url, images.image_sockets(references, images.MASK_KINDS), kinds,
                             "reference", images.REFERENCE_COLOURS)

background = images.display_plane(images.read_slice(volume, axis, index), axis, volume.ndim)
title = f"{socket} · slice {index}" if volume.ndim == 3 else socket
figure = images.render(background, [*truth, *predicted], images.plane_spacing(volume, axis), title)
picture, legend = st.columns([3, 2])
picture.pyplot(figure, clear_figure=True)
for note in notes + more:
    legend.caption(ui.md(note))

row = data.case_results(viewer, info.id)
legend.table(row[row["case"] == case].set_index("case").T.map(ui.number).rename(columns=lambda _: "value"))
for slug in images.image_sockets(outputs, ("boxes", "points", "probability", "json")):
    try:
        value = images.read_json(prediction_url, case, slug)
    except images.MissingStore:
        continue
    with legend.expander(f"prediction: {slug}"):
        st.json(value)
