"""LR schedules: values at step 0, at the end of warmup and at the last step (issue #3 must-show)."""
import math

import pytest

from domainspec.common.train.schedules import lr_lambda, warmup_steps_for


def test_constant_after_3pct_warmup():
    total = 1000
    s = lr_lambda("constant", total, warmup_ratio=0.03)
    assert s.warmup_steps == 30  # 3% of 1000, not 31 from a float ceil
    assert s(0) == pytest.approx(1 / 30)            # first update: 1/w of the peak, never 0
    assert s(14) == pytest.approx(15 / 30)          # linear in between
    assert s(29) == 1.0                             # end of warmup: the peak
    assert s(30) == 1.0 and s(500) == 1.0
    assert s(total - 1) == 1.0                      # no decay at the last step
    assert all(s(i) <= s(i + 1) for i in range(total - 1))


def test_cosine_ramp_then_constant():
    total, w = 200, 20
    s = lr_lambda("cosine_ramp_constant", total, warmup_steps=w)
    assert s(0) == pytest.approx(0.5 * (1 - math.cos(math.pi / w)))
    assert s(9) == pytest.approx(0.5)               # halfway up the half-cosine
    assert s(w - 1) == pytest.approx(1.0)
    assert s(w) == 1.0 and s(total - 1) == 1.0
    # a cosine ramp is slower than linear at the start and faster near the end
    lin = lr_lambda("constant", total, warmup_steps=w)
    assert s(2) < lin(2) and s(16) > lin(16)


def test_cosine_decay_to_min_ratio():
    total, w = 100, 10
    s = lr_lambda("cosine", total, warmup_steps=w, min_lr_ratio=0.1)
    assert s(0) == pytest.approx(0.1)
    assert s(w - 1) == pytest.approx(1.0)
    assert s(total - 1) == pytest.approx(0.1)
    mid = (w - 1) + (total - w) // 2
    assert s(mid) == pytest.approx(0.1 + 0.9 * 0.5, abs=1e-9)
    assert all(s(i) >= s(i + 1) for i in range(w - 1, total - 1))


def test_no_warmup_and_small_runs():
    assert lr_lambda("constant", 10, warmup_ratio=0.03)(0) == 1.0  # 0.3 steps rounds to none
    assert lr_lambda("cosine", 5, warmup_ratio=0.0)(0) == 1.0
    assert lr_lambda("cosine", 5, warmup_ratio=0.0)(4) == 0.0
    assert warmup_steps_for(10, warmup_steps=50) == 10


@pytest.mark.parametrize("kwargs, msg", [
    (dict(kind="linear", total_steps=10), "unknown LR schedule 'linear'"),
    (dict(kind="constant", total_steps=0), "total_steps must be >= 1"),
    (dict(kind="constant", total_steps=10, warmup_ratio=1.5), "warmup_ratio"),
])
def test_bad_arguments(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        lr_lambda(**kwargs)


def test_lambdalr_applies_it_and_state_roundtrips():
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda("constant", 100, warmup_steps=4))
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0])
    state = sched.state_dict()
    assert state["last_epoch"] == 6
