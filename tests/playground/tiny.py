"""Small runs for the playground's tests, and the knob values the page would send."""

from playground import controls as K

TINY = {"layers": 2, "hidden": 16}
TINY_TRAIN = {"n_data": 512, "batch_size": 64, "steps": 100_000}


def tiny_run(session, model="realnvp", dataset="two_moons", **train):
    return session.new_run(model, dataset, dict(TINY), {**TINY_TRAIN, **train})


def knob_values(model="realnvp", **settings):
    """What the page's controls send: the model's defaults, with `settings` changed."""
    knobs = K.knobs_for(model)
    return {K.knob_key(k): settings.get(name, d) for name, (k, d) in knobs.items()}
