"""Training: config validation, a real memorisation run, bit-identical resume, checkpoints, outputs."""
import json

import pytest
import torch

import slt.training.loop as loop
from slt.training import (
    MinibatchSampler,
    TrainConfig,
    build_model,
    checkpoint_steps,
    default_config,
    eval_steps,
    list_checkpoints,
    load_checkpoint,
    load_config,
    train,
)

# a tiny task every test can afford (< 1 s per run)
TINY = dict(p=11, width=48, train_fraction=0.5, lr=1e-2, weight_decay=0.0, batch_size=16, steps=120,
            n_log=12, n_checkpoints_log=4, seeds=(0, 1))


def tiny(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, **kw})


# ---------------------------------------------------------------------------------------------- config

def test_config_round_trip_and_json():
    c = tiny(seeds=(3, 1, 4))
    d = c.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert TrainConfig.from_dict(d) == c
    assert TrainConfig.from_dict(json.loads(json.dumps(d))) == c  # lists come back as tuples


def test_unknown_key_suggests_close_match():
    with pytest.raises(ValueError, match=r"'wieght_decay'.*did you mean 'weight_decay'"):
        TrainConfig.from_dict({"wieght_decay": 0.1})
    with pytest.raises(ValueError, match="unknown config key"):
        tiny().replace(nonsense=1)


@pytest.mark.parametrize(
    "kw, word",
    [(dict(lr=-1e-3), "lr"), (dict(lr=0), "lr"), (dict(train_fraction=1.0), "train_fraction"),
     (dict(train_fraction=0), "train_fraction"), (dict(optimizer="rmsprop"), "optimizer"),
     (dict(loss="l1"), "loss"), (dict(op="mul", p=12), "prime"), (dict(op="pow"), "op"),
     (dict(weight_decay=-1.0), "weight_decay"), (dict(seeds=()), "seeds"), (dict(seeds=(1, 1)), "distinct"),
     (dict(batch_size=0), "batch_size"), (dict(steps=0), "steps"), (dict(width=0), "width"),
     (dict(grok_threshold=1.5), "grok_threshold"), (dict(device="tpu"), "device"),
     (dict(dtype="float16"), "dtype"), (dict(p=True), "p"), (dict(init_scale=float("nan")), "init_scale")],
)
def test_invalid_values(kw, word):
    with pytest.raises(ValueError, match=word):
        tiny(**kw)


def test_load_config_and_presets(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"p": 13, "width": 8, "seeds": [2, 5]}))
    c = load_config(f)
    assert (c.p, c.width, c.seeds) == (13, 8, (2, 5)) and c.lr == TrainConfig().lr
    f.write_text(json.dumps({"p": 13, "widht": 8}))
    with pytest.raises(ValueError, match="did you mean 'width'"):
        load_config(f)
    with pytest.raises(ValueError, match="not found"):
        load_config(tmp_path / "missing.json")
    for name in ("grokking", "no_grokking"):
        assert isinstance(default_config(name), TrainConfig)
    with pytest.raises(ValueError, match="preset"):
        default_config("fast")


def test_schedules_include_ends_and_are_log_spaced():
    c = tiny(steps=10_000, n_log=5, eval_every=None, checkpoint_every=2500, n_checkpoints_log=3)
    assert eval_steps(c) == [0, 1, 10, 100, 1000, 10_000]
    assert checkpoint_steps(c) == [0, 1, 100, 2500, 5000, 7500, 10_000]


# ---------------------------------------------------------------------------------------------- pieces

def test_init_per_seed_is_independent_of_other_seeds():
    alone = build_model(tiny(seeds=(7,)))
    together = build_model(tiny(seeds=(3, 7)))
    for name in ("U", "V", "A"):
        assert torch.equal(getattr(together, name)[1], getattr(alone, name)[0])
        assert not torch.equal(getattr(together, name)[0], getattr(alone, name)[0])


def test_minibatch_sampler_epochs_and_state():
    s = MinibatchSampler((0, 1), n_train=10, batch_size=4)  # drop_last: 2 batches per epoch
    first = torch.cat([s.next(), s.next()], 1)  # (2, 8)
    for c in range(2):
        assert len(set(first[c].tolist())) == 8  # without replacement within an epoch
    assert not torch.equal(first[0], first[1])  # copies shuffle independently
    state = s.state_dict()
    ahead = [s.next() for _ in range(5)]
    s2 = MinibatchSampler((0, 1), n_train=10, batch_size=4)
    s2.load_state_dict(state)
    assert all(torch.equal(x, s2.next()) for x in ahead)
    # a seed's batch order does not depend on its neighbours
    assert torch.equal(MinibatchSampler((1,), 10, 4).next()[0], MinibatchSampler((0, 1), 10, 4).next()[1])


def test_sgd_with_weight_decay_is_one_manual_step():
    c = tiny(optimizer="sgd", lr=0.05, weight_decay=0.3, batch_size=None, steps=1, seeds=(0,), dtype="float64")
    res = train(c)
    m0 = build_model(c)
    a, b, y = res.data.train()
    from slt.losses import centred_mse

    centred_mse(m0(a, b), y).sum().backward()
    with torch.no_grad():
        for name in ("U", "V", "A"):
            p0 = getattr(m0, name)
            torch.testing.assert_close(getattr(res.model, name), p0 - 0.05 * (p0.grad + 0.3 * p0))


def test_adam_is_coupled_adamw_is_not():
    base = dict(lr=1e-2, weight_decay=0.5, steps=3, batch_size=None, seeds=(0,))
    adam, adamw = train(tiny(optimizer="adam", **base)), train(tiny(optimizer="adamw", **base))
    assert not torch.equal(adam.model.U, adamw.model.U)
    a, b, y = adam.data.train()
    from slt.losses import centred_mse

    # the reference: autograd and torch's Adam (coupled L2). slt's closed-form gradient and fused Adam agree with
    # it to float rounding (the decay, 0.5, is 5 orders of magnitude above that)
    ref = build_model(tiny(**base))
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=0.5)
    for _ in range(3):
        opt.zero_grad()
        centred_mse(ref(a, b), y).sum().backward()
        opt.step()
    for name in ("U", "V", "A"):
        assert torch.allclose(getattr(ref, name), getattr(adam.model, name), rtol=1e-5, atol=1e-6), name
        assert not torch.allclose(getattr(ref, name), getattr(adamw.model, name), rtol=1e-3, atol=1e-4), name


# ---------------------------------------------------------------------------------------------- end to end

def test_tiny_case_memorises():
    """A real run: 2 seeds, minibatch Adam, p = 11. Loss must fall and train accuracy reach 1."""
    res = train(tiny(steps=400, n_log=20))
    m = res.metrics
    assert m["step"][0] == 0 and m["step"][-1] == 400
    for c in range(2):
        assert res.curve("train_acc", c)[0] < 0.5
        assert res.curve("train_acc", c)[-1] == 1.0
        assert res.curve("train_loss", c)[-1] < 0.1 * res.curve("train_loss", c)[0]
        assert res.memorisation_step[c] is not None and 0 < res.memorisation_step[c] <= 400
    assert len(m["weight_norm"][0]) == 2 and res.wall_time_s > 0


def test_seed_trains_the_same_alone_or_batched():
    together = train(tiny(seeds=(0, 5)))
    alone = train(tiny(seeds=(5,)))
    # same data, init and batch order; only float summation order inside batched kernels may differ
    torch.testing.assert_close(together.model.U[1], alone.model.U[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(together.model.A[1], alone.model.A[0], rtol=1e-4, atol=1e-5)


def test_stop_on_grok_stops_at_first_step_all_seeds_pass():
    full = train(tiny(steps=300, n_log=30, train_fraction=0.8))
    test_acc = full.metrics["test_acc"]
    thr = min(max(r[c] for r in test_acc) for c in range(2))  # every seed reaches it at some point
    assert thr > 0
    stop_at = next(s for s, r in zip(full.metrics["step"], test_acc) if min(r) >= thr)
    early = train(tiny(steps=300, n_log=30, train_fraction=0.8, stop_on_grok=True, grok_threshold=thr))
    assert early.metrics["step"][-1] == stop_at
    k = len(early.metrics["step"])
    assert early.metrics["test_acc"] == full.metrics["test_acc"][:k]


def test_run_dir_outputs_and_checkpoints(tmp_path):
    c = tiny()
    res = train(c, out_dir=tmp_path)
    assert list_checkpoints(tmp_path) == checkpoint_steps(c)
    ck = load_checkpoint(tmp_path)
    assert ck.step == c.steps and ck.config == c and ck.data.n_train == res.data.n_train
    assert torch.equal(ck.model.U, res.model.U) and torch.equal(ck.model.A, res.model.A)
    first = load_checkpoint(tmp_path, step=0)
    assert torch.equal(first.model.U, build_model(c).U)
    with pytest.raises(ValueError, match="step"):
        load_checkpoint(tmp_path, step=7)
    with pytest.raises(ValueError, match="no checkpoints"):
        load_checkpoint(tmp_path / "nothing")
    js = json.loads((tmp_path / "metrics.json").read_text())
    assert js["complete"] and js["config"] == c.to_dict() and js["version"]
    assert js["memorisation_step"] == res.memorisation_step and js["grokking_step"] == res.grokking_step
    assert js["metrics"]["test_acc"] == res.metrics["test_acc"]
    rows = (tmp_path / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,seed,train_loss") and len(rows) == 1 + 2 * len(res.metrics["step"])
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_different_config_in_existing_dir_is_refused(tmp_path):
    train(tiny(steps=5), out_dir=tmp_path)
    with pytest.raises(ValueError, match="different config"):
        train(tiny(steps=5, lr=2e-2), out_dir=tmp_path)


class Interrupt(Exception):
    pass


def test_resume_is_bit_identical(tmp_path, monkeypatch):
    c = tiny(steps=200, checkpoint_every=50, n_checkpoints_log=0)
    reference = train(c)

    real = loop._write_outputs
    calls = {"n": 0}

    def crash_after_step_100(out, config, metrics, *args, **kwargs):
        real(out, config, metrics, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:  # outputs are written after the checkpoints at steps 0, 50, 100
            raise Interrupt  # as if the process died right after the step-100 checkpoint

    monkeypatch.setattr(loop, "_write_outputs", crash_after_step_100)
    with pytest.raises(Interrupt):
        train(c, out_dir=tmp_path)
    monkeypatch.setattr(loop, "_write_outputs", real)
    assert list_checkpoints(tmp_path) == [0, 50, 100]

    steps_taken = {"n": 0}
    real_next = loop.MinibatchSampler.next

    def counting_next(self):
        steps_taken["n"] += 1
        return real_next(self)

    monkeypatch.setattr(loop.MinibatchSampler, "next", counting_next)
    resumed = train(c, out_dir=tmp_path)
    assert steps_taken["n"] == 100  # only the remaining steps were trained
    assert resumed.metrics == reference.metrics
    for name in ("U", "V", "A"):
        assert torch.equal(getattr(resumed.model, name), getattr(reference.model, name))
    assert list_checkpoints(tmp_path) == [0, 50, 100, 150, 200]

    # a finished run is reloaded, not retrained
    steps_taken["n"] = 0
    again = train(c, out_dir=tmp_path)
    assert steps_taken["n"] == 0 and again.metrics == reference.metrics
    assert torch.equal(again.model.U, reference.model.U)


def test_cuda_request_without_cuda_is_a_value_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA"):
        train(tiny(device="cuda"))


def test_resume_from_step_zero_does_not_duplicate(tmp_path, monkeypatch):
    c = tiny(steps=30, n_checkpoints_log=0, batch_size=None)  # full batch; checkpoints at 0 and 30 only
    reference = train(c)
    real = loop._write_outputs

    def crash(*args, **kwargs):
        real(*args, **kwargs)
        raise Interrupt

    monkeypatch.setattr(loop, "_write_outputs", crash)
    with pytest.raises(Interrupt):
        train(c, out_dir=tmp_path)
    monkeypatch.setattr(loop, "_write_outputs", real)
    assert list_checkpoints(tmp_path) == [0]
    resumed = train(c, out_dir=tmp_path)
    assert resumed.metrics == reference.metrics
    assert torch.equal(resumed.model.U, reference.model.U)
