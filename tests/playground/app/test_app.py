"""The playground app: knobs from config metadata, the URL, presets, and the page's handlers end to end."""

import os
import time

import gradio as gr
import numpy as np
import pytest
import torch

from core import checkpoint, registry
from core.errors import ConfigError, TrainingDiverged
from core.train import Trainer
from playground import app as A
from playground import controls as K
from playground.app import wiring
from playground.views import view_for
from playground import presets as P
from playground.runs import RunManager, Session
from tests.fakes import free_port, wait_for
from tests.playground.tiny import TINY, TINY_TRAIN, knob_values, tiny_run


# ---- knobs and links ----------------------------------------------------------
def test_knobs_mirror_each_models_config():
    """Every config field of every model gets a control of the right kind, range and live flag."""
    keys = K.all_knobs()
    for name in registry.model_names():
        cfg = registry.model_config(name)
        knobs = K.knobs_for(name)
        for field, (knob, default) in knobs.items():
            assert K.knob_key(knob) in keys
            if knob.scope == "model":
                assert default == getattr(cfg, field)
        # the controls' default values rebuild exactly the registered configuration
        model_s, train_s = K.settings_from(name, knob_values(name))
        assert registry.model_config(name, model_s) == cfg
        assert registry.train_config(name, train_s) == registry.train_config(name)
    lr = K.knobs_for("realnvp")["lr"][0]
    assert lr.live and "live" in lr.info()
    assert not K.knobs_for("realnvp")["layers"][0].live and "Reset" in K.knobs_for("realnvp")["layers"][0].info()


def test_the_knobs_shown_are_the_models_own():
    def visible(model, **settings):
        ups = A.knob_updates(model, settings)
        keys = {K.knob_key(k): name for name, (k, _) in K.knobs_for(model).items()}
        return {keys[key] for key, u in ups.items() if key in keys and u.get("visible")}

    nsgan = visible("nsgan")
    assert {"latent", "hidden", "n_critic", "lr_g", "lr_d", "betas", "lr"} <= nsgan
    assert not nsgan & {"divergence", "features", "clip", "gp_weight", "loss"}  # not nsgan's
    assert {"gp_weight"} <= visible("wgan_gp") and "clip" not in visible("wgan_gp")
    assert {"clip", "features"} <= visible("mmdgan") and "divergence" in visible("fgan")
    # DDPM's sampler settings follow the sampler
    assert {"variance"} <= visible("ddpm") and not {"eta", "ddim_steps"} & visible("ddpm")
    assert {"eta", "ddim_steps"} <= visible("ddpm", sampler="ddim") and "variance" not in visible("ddpm", sampler="ddim")


def test_moving_a_knob_shows_the_settings_that_follow_it():
    s = Session(RunManager(1))
    try:
        tiny_run(s, "ddpm", "eight_gaussians")
        sampler = K.knob_key(K.knobs_for("ddpm")["sampler"][0])
        eta = K.knob_key(K.knobs_for("ddpm")["eta"][0])
        variance = K.knob_key(K.knobs_for("ddpm")["variance"][0])
        out = A.on_knob(s, "ddpm", "eight_gaussians", {**knob_values("ddpm"), sampler: "ddim"}, sampler)
        assert out["knob:" + eta]["visible"] is True and out["knob:" + variance]["visible"] is False
        out = A.on_knob(s, "ddpm", "eight_gaussians", knob_values("ddpm"), sampler)
        assert out["knob:" + eta]["visible"] is False
        assert not any(k.startswith("knob:") for k in A.on_knob(s, "ddpm", "eight_gaussians", knob_values("ddpm"), eta))
    finally:
        s.close()


def test_impossible_settings_are_refused_with_the_allowed_range():
    key = K.knob_key(K.knobs_for("realnvp")["layers"][0])
    values = knob_values()
    with pytest.raises(ConfigError, match="layers=0 is out of range; it must be between 1 and"):
        K.settings_from("realnvp", {**values, key: 0})
    with pytest.raises(ConfigError, match="whole number"):
        K.settings_from("realnvp", {**values, key: 2.5})


def test_link_round_trip_keeps_only_changed_settings():
    q = K.encode_query("realnvp", "eight_gaussians", {"layers": 4, "lr": 0.003})
    assert q == "model=realnvp&data=eight_gaussians&layers=4&lr=0.003"
    params = dict(p.split("=") for p in q.split("&"))
    model, data, settings, problems = K.decode_query(params)
    assert (model, data, settings, problems) == ("realnvp", "eight_gaussians", {"layers": 4, "lr": 0.003}, [])
    assert K.non_default("realnvp", {"layers": 4, "hidden": 64}, {"lr": 0.003}) == {"layers": 4, "lr": 0.003}


def test_bad_links_fall_back_with_a_reason_for_each_value():
    model, data, settings, problems = K.decode_query(
        {"model": "nope", "data": "two_moons", "layers": "999", "colour": "red"})
    assert model == K.DEFAULT_MODEL and data == "two_moons" and settings == {}
    text = " | ".join(problems)
    assert "model='nope' is not a model here" in text and "realnvp" in text
    assert "layers=999 is out of range" in text
    assert "'colour' is not a setting of realnvp" in text
    _, data, _, problems = K.decode_query({"data": "moons", "lr": "fast"})
    assert data == K.DEFAULT_DATASET
    assert any("data='moons'" in p for p in problems) and any("lr must be a number" in p for p in problems)


def test_strips_get_the_full_width_and_the_rest_the_grid():
    assert A.placement("flow", "realnvp") == ["flow_layers", "flow_base", "flow_density", "flow_logdet", None, None]
    assert A.placement("flow", "realnvp_ms")[-1] == "flow_scales"  # a digit's latents at each scale, full width
    assert A.placement("diffusion") == ["diff_forward", "diff_reverse", "diff_field", None, None, "diff_film"]
    for family in registry.families():
        shown = [k for k in A.placement(family) if k]
        assert sorted(shown) == sorted(p.key for p in view_for(family).panels)


def test_a_views_time_slider_is_a_control_its_family_declares():
    ups = A.control_updates("diffusion")
    assert ups["control:t"]["visible"] is True and ups["control:t"]["value"] == 0.1
    assert A.control_updates("flow")["control:t"]["visible"] is False
    s = Session(RunManager(1))
    try:
        run = tiny_run(s, "ddpm", "eight_gaussians")
        assert run.trainer.view_options == {"t": 0.1}  # the control's default reaches the traces from the start
        run.step_once(3)
        assert wait_for(lambda: run.latest is not None and run.latest.get("step") == 3 and run.trainer.latest_model)
        out = A.on_view_control(s, "t", 0.5)
        assert run.trainer.view_options == {"t": 0.5} and run.latest["traces"]["field_t"].tolist() == [0.5]
        field = out["slots"][A.SLOTS.index("slot1")]  # the field panel, redrawn at once from the newest weights
        assert "t = 0.50" in field.layout.annotations[0].text
        assert A.on_view_control(s, "sigma", 0.3) == {}  # not this family's control
        tiny_run(s, "realnvp")
        assert A.on_view_control(s, "t", 0.3) == {} and s.current.trainer.view_options == {}
    finally:
        s.close()
        s.manager.shutdown()


def test_presets_are_valid_configurations():
    assert len(P.PRESETS) >= 6
    titles = {p["title"] for p in P.PRESETS}
    for needed in ("A GAN collapses onto a few modes", "WGAN-GP keeps every mode", "A flow unfolds the two moons",
                   "The VAE's latent grid", "Diffusion trajectories", "Likelihood versus sample quality"):
        assert needed in titles
    for p in P.PRESETS:
        assert len(p["watch"].split("\n")) == 2, p["title"]
        assert P.find(p["slug"]) is p and P.find(p["title"]) is p
        for run in p.get("runs", [p]):
            assert run["dataset"] in registry.dataset_names()
            spec = registry.model_spec(run["model"])
            assert spec.family == (p["family"] if run is p else spec.family)
            assert set(run["settings"]) <= set(K.knobs_for(run["model"]))
            K.settings_from(run["model"], knob_values(run["model"], **run["settings"]))  # ConfigError if impossible


# ---- the page's handlers over live runs -----------------------------------------
def test_tick_redraws_only_new_snapshots_and_reports_divergence(manager):
    s = Session(manager)
    run = tiny_run(s)
    assert wait_for(lambda: run.latest is not None)
    out = A.tick(s, "step", "auto")
    assert len(out["slots"]) == len(A.SLOTS) and "loss_plot" in out and "status" in out
    drawn = [v for v in out["slots"] if v != gr.skip()]
    assert len(drawn) == len(view_for("flow").panels_for(run.model_name)) == 4  # every panel it feeds, in its place
    assert set(A.tick(s, "step", "auto")) <= {"timer"}  # nothing new: no picture, chart or status sent



def test_a_diverging_run_stops_where_headless_training_does_and_says_so(manager):
    # A VAE at lr=1 without clipping overflows within a few steps. The run trains in a child
    # process from the same model and seed, so it must stop at exactly the step a headless
    # Trainer stops at, with the last good weights and a message on the page.
    settings = {**TINY_TRAIN, "lr": 1.0, "grad_clip": 0.0}
    cfg = registry.train_config("vae", settings)
    torch.manual_seed(cfg.seed)  # as a Run builds its model
    data = registry.load_dataset("eight_gaussians")
    headless = Trainer(registry.build_model("vae", data.shape, dict(TINY)), data, cfg, device="cpu")
    with pytest.raises(TrainingDiverged):
        headless.fit(200)
    s = Session(manager)
    run = tiny_run(s, "vae", "eight_gaussians", lr=1.0, grad_clip=0.0)
    run.play()
    assert wait_for(lambda: run.status == "diverged")
    assert wait_for(lambda: run.latest.get("final", False))
    out = A.tick(s, "step", "auto")
    assert f"Training stopped at step {headless.step_count + 1}" in out["status"]
    assert "lower learning rate" in out["status"]
    assert run.step == headless.step_count and manager.active == 0  # good weights kept; the slot is free


def test_exports_png_gif_and_loadable_weights(manager):
    s = Session(manager)
    run = tiny_run(s)
    run.step_once(30)
    assert wait_for(lambda: run.step == 30 and run.latest is not None and run.latest["step"] == 30)
    png = A.export_png(s)["export_file"]["value"]
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    gif = A.export_gif(s)["export_file"]["value"]
    assert open(gif, "rb").read(6) in (b"GIF89a", b"GIF87a")
    weights = A.export_weights(s)["export_file"]["value"]
    model, meta = checkpoint.load(weights)
    assert meta["model"] == "realnvp" and meta["dataset"] == "two_moons"
    x = torch.randn(64, 2)
    run.trainer.latest_model.eval()
    with torch.no_grad():
        assert torch.allclose(model.log_prob(x), run.trainer.latest_model.log_prob(x), atol=1e-5)
    folder = s.tmpdir()
    s.close()
    assert not os.path.exists(folder)  # a closed tab leaves no files behind


def test_errors_reach_the_page_as_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "points.csv"
    bad.write_text("x,y\n1,2\nthree,4\n")
    with gr.Blocks():
        ui = wiring.UI()
        ui["status"] = gr.Markdown()
        ui["dataset"] = gr.Dropdown()
        ui["session"], ui["model"], ui["upload"] = gr.State(), gr.Dropdown(), gr.File()
    callback, _, outs = ui.bind(A.on_upload, ["session", "model", "upload", "knobs"], ["dataset"])
    s = Session(RunManager(1))
    result = callback(None, s, "realnvp", str(bad))
    status = result[outs.index(ui["status"])]
    assert status.startswith("⚠️") and "points.csv, line 3: 'three' is not a number" in status
    assert "Traceback" not in status and result[outs.index(ui["dataset"])] == gr.skip()
    assert s.current is None and s.uploads == {}


def test_uploaded_points_become_a_dataset(manager, tmp_path):
    pts = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    path = tmp_path / "blob.npy"
    np.save(path, pts)
    s = Session(manager)
    out = A.on_upload(s, "realnvp", str(path), knob_values(batch_size=64))
    assert s.current.dataset_name == "upload: blob.npy" and "upload: blob.npy" in A.dataset_choices(s)
    assert "data=" not in out["query"]  # an upload cannot travel in a link
    np.testing.assert_array_equal(s.current.trainer.data.cpu().numpy(), pts)


# ---- the page, driven over HTTP ------------------------------------------------
def test_client_plays_pauses_and_resets():
    from gradio_client import Client

    demo = A.build_app(RunManager(2))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        state = lambda: client.predict(api_name="/state")[0]  # noqa: E731
        assert state()["status"] == "none"
        client.predict("realnvp", "two_moons", api_name="/play")
        assert wait_for(lambda: state()["step"] > 20, timeout=30, every=0.2)
        s = state()
        assert s["status"] == "running" and s["label"] == "realnvp@two_moons#1" and s["snapshots"] > 0
        client.predict(api_name="/pause")
        time.sleep(0.3)
        paused = state()
        time.sleep(0.6)
        assert state()["step"] == paused["step"] and paused["status"] == "paused"
        client.predict("realnvp", "two_moons", api_name="/reset")
        s = state()
        assert s["step"] == 0 and s["status"] == "ready" and s["label"] == "realnvp@two_moons#2"
    finally:
        demo.close()


def test_a_preset_sets_everything_and_queues_its_second_run(manager):
    s = Session(manager)
    out = A.apply_preset(s, "Likelihood versus sample quality")
    first, second = P.find("likelihood-vs-quality")["runs"]
    assert s.current.model_name == first["model"] and s.current.dataset_name == first["dataset"]
    assert s.current.train_cfg.steps == first["settings"]["steps"]
    assert out["watch"].startswith("**Likelihood versus sample quality**")
    assert "model=realnvp" in out["query"] and "steps=1500" in out["query"]
    assert [c["model"] for c in s.chain] == [second["model"]]
    # the first run finishes (a short stand-in) and the next tick starts the second, on the same data
    s.current.trainer.cfg.steps = 5
    s.current.play()
    assert wait_for(lambda: s.current.status == "done")
    out = A.tick(s, "step", "auto")
    assert s.current.model_name == second["model"] and s.current.dataset_name == first["dataset"]
    assert s.current.status in ("running", "waiting") and s.chain == []
    assert out["model"]["value"] == second["model"] and list(s.runs_for_compare())[0].startswith(first["model"])
    s.close()
    assert A.apply_preset(s, "no such preset") == {}


def test_on_digits_the_page_hides_what_only_the_plane_has():
    # a field's slider and a plane's panels move nothing beside digits
    assert "gan_optimal" in A.placement("gan", "nsgan", "points")
    assert "gan_optimal" not in A.placement("gan", "nsgan", "images")
    assert "gan_modes" in A.placement("gan", "nsgan", "images")  # the digit classes take its place
    for family, control in (("diffusion", "t"), ("autoregressive", "x1"), ("score", "sigma")):
        assert A.control_updates(family, kind="points")[f"control:{control}"]["visible"] is True
        assert A.control_updates(family, kind="images")[f"control:{control}"]["visible"] is False
