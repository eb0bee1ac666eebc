"""The lean L-BFGS: the arithmetic of torch.optim.LBFGS without line search, a fixed evaluation budget."""

from __future__ import annotations

import math

import torch

from impasto.core import lbfgs


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def _closure(x: torch.Tensor, calls: list):
    def closure() -> torch.Tensor:
        x.grad = None
        loss = _rosenbrock(x)
        loss.backward()
        calls.append(float(loss.detach()))
        return loss

    return closure


def test_follows_torch_lbfgs_and_uses_exactly_the_budget():
    start = torch.linspace(-1.0, 1.5, 8, dtype=torch.float64)
    ours, calls = start.clone().requires_grad_(True), []
    lbfgs.minimize(_closure(ours, calls), ours, 12, history_size=5, lr=0.1)
    theirs, calls_t = start.clone().requires_grad_(True), []
    opt = torch.optim.LBFGS([theirs], lr=0.1, max_iter=12, max_eval=12, history_size=5,
                            tolerance_grad=0.0, tolerance_change=0.0)  # fmt: skip
    opt.step(_closure(theirs, calls_t))
    assert len(calls) == 12 == len(calls_t)
    assert torch.allclose(ours.detach(), theirs.detach(), rtol=1e-9, atol=1e-12)
    assert calls[-1] < calls[0]


def test_converges_on_rosenbrock():
    x, calls = torch.zeros(6, dtype=torch.float64, requires_grad=True), []
    lbfgs.minimize(_closure(x, calls), x, 200, history_size=10)
    assert calls[-1] < 1e-8 and len(calls) == 200
    assert torch.allclose(x.detach(), torch.ones(6, dtype=torch.float64), atol=1e-4)


def test_a_zero_gradient_ends_the_run():
    x, calls = torch.ones(4, dtype=torch.float64, requires_grad=True), []  # Rosenbrock's minimum
    lbfgs.minimize(_closure(x, calls), x, 50)
    assert len(calls) == 1 and torch.equal(x.detach(), torch.ones(4, dtype=torch.float64))


def test_zero_budget_leaves_x_alone():
    x = torch.ones(3, requires_grad=True)
    lbfgs.minimize(lambda: None, x, 0)
    assert torch.equal(x.detach(), torch.ones(3))


def test_a_clamping_closure_does_not_blow_up_the_curvature_scale():
    # Pixels pulled past a bound, as a dark style pulls dark pixels below 0: the closure clamps x to [0, 1] (as the
    # optimization does) and half the coordinates sit at a bound. The step recorded must be the step taken: the
    # step asked for (torch.optim.LBFGS's arithmetic) grows the inverse Hessian's scale without limit until the
    # direction overflows to NaN, while the loss stalls.
    gen = torch.Generator().manual_seed(0)
    n = 4096
    target = torch.rand(n, generator=gen, dtype=torch.float64) * 3 - 1  # a third below 0, a third above 1
    scale = 0.1 + torch.rand(n, generator=gen, dtype=torch.float64)
    x, calls = torch.full((n,), 0.5, dtype=torch.float64, requires_grad=True), []

    def closure():
        with torch.no_grad():
            x.clamp_(0, 1)
        x.grad = None
        loss = (scale * (x - target) ** 2).sum()
        loss.backward()
        calls.append(float(loss.detach()))

    lbfgs.minimize(closure, x, 60, history_size=10)
    best = float((scale * (target.clamp(0, 1) - target) ** 2).sum())  # the constrained minimum
    assert all(torch.isfinite(torch.tensor(calls))) and torch.isfinite(x).all()
    assert min(calls) < best * (1 + 1e-3), (min(calls), best)


def test_a_run_that_climbs_goes_back_to_its_best_point_and_converges():
    # A Gram-matrix loss on bf16 features, as a bf16 style transfer's: its rounding makes a curvature pair that
    # sends the next step far too long; the loss climbs by orders of magnitude. Without a guard the run never came
    # back below its start; with it, the run returns to its best point and converges.
    gen = torch.Generator().manual_seed(1)
    w, target = torch.randn(16, 3, generator=gen), torch.rand(3, 1024, generator=gen) * 2
    gram_target = (w @ target) @ (w @ target).T / 1024
    x, calls = torch.rand(3, 1024, generator=gen).requires_grad_(True), []

    def closure() -> float:
        x.grad = None
        f = (w @ x).bfloat16()
        loss = (((f @ f.T).float() / 1024 - gram_target) ** 2).sum()
        loss.backward()
        calls.append(float(loss.detach()))
        return calls[-1]

    lbfgs.minimize(closure, x, 60, history_size=100)
    assert len(calls) == 60 and all(map(math.isfinite, calls))
    assert calls[-1] < 1e-3 * calls[0], (calls[0], calls[-1])
    assert torch.isfinite(x).all()
