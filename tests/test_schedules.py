import math

import numpy as np
import pytest
import torch

from ssl_tutorial.schedules import as_lambda, infinite_lr, repeated_cosine, schedule_curve

# Chunks of unequal length, so that the boundaries s_k = 0, 100, 290 are really used; decay lengths 90, 180, 90.
CHUNKS = dict(chunk_steps=[100, 190, 100], eta_max=1.0, eta_min=0.1, warmup=10)
STARTS = [0, 100, 290]
# Infinite schedule of 1000 steps: warm-up [0, 100), cool-down [100, 300), constant [300, 900), anneal [900, 1000).
INF = dict(total_steps=1000, eta_max=1.0, eta_const=0.25, eta_min=0.01, warmup=100, cooldown=200, anneal=100)


def rc(step, **overrides):
    return repeated_cosine(step, **{**CHUNKS, **overrides})


def inf(step, **overrides):
    return infinite_lr(step, **{**INF, **overrides})


@pytest.mark.parametrize("s", STARTS)
def test_repeated_cosine_rewarms_linearly_at_every_chunk(s):
    assert rc(s) == pytest.approx(0.1), "each chunk starts its warm-up from eta_min"
    assert rc(s + 5) == pytest.approx(0.55), "halfway through warm-up: (eta_min + eta_max) / 2"
    assert rc(s + 10) == pytest.approx(1.0), "eta_max right after warm-up"


@pytest.mark.parametrize("last", [99, 289, 389])
def test_repeated_cosine_reaches_eta_min_at_the_end_of_each_chunk(last):
    assert rc(last) == pytest.approx(0.1, abs=1e-3)
    if last < 389:
        assert rc(last + 1) < rc(last + 2), "the next chunk warms up again"


@pytest.mark.parametrize("step, expected", [
    (40, 0.775),   # u = 30/90 = 1/3: 0.1 + 0.9 * (1 + 1/2) / 2
    (55, 0.55),    # u = 1/2
    (70, 0.325),   # u = 2/3: 0.1 + 0.9 * (1 - 1/2) / 2
    (170, 0.775),  # chunk 1, u = 60/180
    (200, 0.55),   # chunk 1, u = 90/180
    (345, 0.55),   # chunk 2, u = 45/90
])
def test_repeated_cosine_matches_the_closed_form(step, expected):
    assert rc(step) == pytest.approx(expected)


def test_repeated_cosine_past_the_last_chunk_and_without_warmup():
    assert rc(390) == rc(10_000) == 0.1
    for s in STARTS:
        assert rc(s, warmup=0) == pytest.approx(1.0), "no warm-up: each chunk restarts at eta_max"


def test_infinite_warmup_is_linear_from_zero_and_cooldown_is_a_half_cosine():
    assert (inf(0), inf(50), inf(100)) == pytest.approx((0.0, 0.5, 1.0))
    assert inf(200) == pytest.approx((1.0 + 0.25) / 2), "cool-down midpoint is (eta_max + eta_const) / 2"
    assert inf(150) == pytest.approx(0.25 + 0.75 * (1 + math.cos(math.pi / 4)) / 2)


def test_infinite_is_constant_then_monotone():
    curve = schedule_curve(infinite_lr, 1100, **INF)
    assert curve.shape == (1100,) and curve[17] == inf(17)
    assert np.all(curve[300:901] == 0.25), "eta_const for the whole constant phase (and at the annealing start)"
    assert np.all(np.diff(curve[100:]) <= 0), "never increases after warm-up"
    assert np.all(np.diff(curve[:101]) > 0)


def test_infinite_exp_annealing():
    assert inf(950) == pytest.approx(math.sqrt(0.25 * 0.01)), "geometric midpoint of eta_const and eta_min"
    assert inf(999) == pytest.approx(0.25 * (0.01 / 0.25) ** 0.99)
    assert inf(1000) == inf(5000) == 0.01


def test_infinite_linear_annealing_ends_at_eta_min():
    assert inf(950, anneal_shape="linear") == pytest.approx((0.25 + 0.01) / 2)
    assert inf(999, anneal_shape="linear") == pytest.approx(0.01 + 0.24 / 100), "one step's decrement above eta_min"
    assert inf(1000, anneal_shape="linear") == 0.01
    assert inf(500, eta_min=0.0, anneal_shape="linear") == 0.25


def test_infinite_anneal_at_branch():
    main = schedule_curve(infinite_lr, 1000, **INF)
    branch = schedule_curve(infinite_lr, 1000, **INF, anneal_at=500)
    np.testing.assert_array_equal(branch[:500], main[:500])
    assert main[550] == 0.25, "the main run stays constant"
    assert branch[550] == pytest.approx(0.05) and branch[600] == branch[999] == 0.01
    assert inf(1050, anneal_at=1000) == pytest.approx(0.05), "a branch from the last checkpoint runs past total_steps"


@pytest.mark.parametrize("fn, kwargs", [
    (infinite_lr, dict(total_steps=20, eta_max=0.1, eta_const=0.05, eta_min=0.005, warmup=4, cooldown=4, anneal=4)),
    (repeated_cosine, dict(chunk_steps=[8, 8], eta_max=0.1, eta_min=0.01, warmup=2)),
])
def test_lambda_lr_drives_a_torch_optimizer(fn, kwargs):
    kwargs = dict(kwargs)
    eta_max = kwargs.pop("eta_max")
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=eta_max)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, as_lambda(fn, eta_max, **kwargs))
    for t in range(22):
        assert opt.param_groups[0]["lr"] == pytest.approx(fn(t, eta_max=eta_max, **kwargs)), f"step {t}"
        model(torch.ones(1, 2)).sum().backward()
        opt.step()
        sched.step()


BAD = [
    (lambda: rc(-1), "negative"),
    (lambda: rc(0, warmup=-1), "warmup >= 0"),
    (lambda: rc(0, warmup=100), "shorten warmup"),
    (lambda: rc(0, eta_max=-1.0), "must be >= 0"),
    (lambda: rc(0, eta_min=2.0), "lower eta_min"),
    (lambda: rc(0, chunk_steps=[]), "pass the chunk lengths"),
    (lambda: inf(0, anneal=800), "shorten a phase"),
    (lambda: inf(0, cooldown=-1), "cooldown >= 0"),
    (lambda: inf(0, total_steps=-1), "total_steps >= 0"),
    (lambda: inf(0, eta_min=-0.1), "must be >= 0"),
    (lambda: inf(0, eta_const=2.0), "lower eta_const"),
    (lambda: inf(0, eta_min=0.5), "lower eta_min"),
    (lambda: inf(0, anneal_shape="cosine"), "use 'exp' or 'linear'"),
    (lambda: inf(0, eta_min=0.0), "anneal_shape='linear'"),
    (lambda: inf(0, anneal_at=200), "branch from the constant phase"),
    (lambda: inf(0, anneal_at=1001), "branch from the constant phase"),
    (lambda: schedule_curve(infinite_lr, -1, **INF), "steps >= 0"),
    (lambda: as_lambda(repeated_cosine, 0.0, chunk_steps=[10]), "peak learning rate"),
    (lambda: as_lambda(repeated_cosine, 1.0, chunk_steps=[10], warmup=10), "shorten warmup"),
]


@pytest.mark.parametrize("call, fix", BAD)
def test_bad_inputs_raise_one_line_value_errors(call, fix):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and fix in message, message
