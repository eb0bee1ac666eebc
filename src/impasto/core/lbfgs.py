"""L-BFGS as the PyTorch tutorial runs it (``torch.optim.LBFGS``, no line search), in a lean loop.

The arithmetic is that of ``torch.optim.LBFGS`` without a line search: the first step is
``min(1, 1 / |g|_1) * lr`` along ``-g``, every later one ``lr`` along the two-loop direction, pairs with
``y.s <= 1e-10`` are skipped, and the initial inverse Hessian is ``y.s / y.y`` of the newest pair. Three
differences: the scalars of the two-loop recursion are kept in double precision (torch keeps them as float32
tensors; in the tutorial benchmark the result ends equal or slightly lower, docs/benchmarks.md), a direction
that is not a descent direction restarts from the gradient instead of ending the run, and the step stored in the
history is the step taken, read back after the closure, which may have clamped x into the pixel range (torch
stores the step it asked for; where many pixels are pushed past a bound, as a dark style pushes dark pixels
below 0, its inverse Hessian's scale then grows with every step while the loss stalls, until the direction
overflows to NaN).

A fourth keeps a run from diverging: where the loss climbs past :data:`RISE` times the lowest loss seen (a pair
measured across a jump can make the inverse Hessian's scale far too large, as bf16 rounding does with colour
preservation's luminance images), the run goes back to the best point and its gradient, forgets its history, halves
the step it takes from then on and starts again from the gradient. A run whose loss never climbs that far takes
exactly torch's steps; ``guard=False`` takes them always (the tutorial preset, whose raw losses spike past 1000x
their lowest and come back by themselves: guarded, its 256 px run ended 18x higher).

Every dot product and sum is taken in an order that does not depend on the number of torch threads
(:func:`dot`): a run gives the same pixels on one thread (a cluster's actor, ``impasto --cluster``) as on many.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import torch

#: Elements summed in one go by :func:`dot` (each block by one thread, then the block sums in a fixed order).
BLOCK = 4096
#: A loss above this multiple of the lowest loss seen sends the run back to the best point (see the module's text).
RISE = 2.0


def dot(a: torch.Tensor, b: torch.Tensor | None = None) -> float:
    """``a . b`` (``b`` None: the sum of ``a``) of 1-D float tensors, the same to the last bit whatever the number
    of torch threads (BLAS ``dot`` and torch's ``sum`` split a long vector by thread count, and the rounding
    follows the split): one batched product of blocks of :data:`BLOCK` elements, each block in one thread, then
    the block sums added exactly (``math.fsum``). About as fast as BLAS ``dot``."""
    if b is None:
        b = torch.ones_like(a)
    n = a.numel()
    m = n - n % BLOCK
    parts = torch.bmm(a[:m].view(-1, 1, BLOCK), b[:m].view(-1, BLOCK, 1)).view(-1).tolist() if m else []
    if m < n:  # fewer than BLOCK elements: one thread
        parts.append(float((a[m:].double() * b[m:].double()).sum()))
    return math.fsum(parts)


def _direction(g: torch.Tensor, s_hist: deque, y_hist: deque, rho: deque, h_diag: float) -> torch.Tensor:
    """-H g by the two-loop recursion over the stored pairs (oldest first)."""
    q = g.neg()
    alphas = []
    for s, y, r in zip(reversed(s_hist), reversed(y_hist), reversed(rho), strict=True):
        a = dot(s, q) * r
        q.add_(y, alpha=-a)
        alphas.append(a)
    d = q.mul_(h_diag)
    for s, y, r, a in zip(s_hist, y_hist, rho, reversed(alphas), strict=True):
        b = dot(y, d) * r
        d.add_(s, alpha=a - b)
    return d


def _step_taken(before: torch.Tensor, d: torch.Tensor, t: float, after: torch.Tensor) -> torch.Tensor:
    """The step from ``before`` to ``after`` (in ``d``'s storage): ``t d`` where the closure left x where the step
    put it (the same arithmetic as torch, to the bit), ``after - before`` where it moved x (clamped it to a bound)."""
    moved = torch.add(before, d, alpha=t) != after  # the same operation as the step, so the same rounding
    s = d.mul_(t)
    if bool(moved.any()):
        s[moved] = (after - before)[moved]
    return s


@torch.no_grad()
def minimize(
    closure: Callable[[], object],
    x: torch.Tensor,
    evaluations: int,
    history_size: int = 100,
    lr: float = 1.0,
    guard: bool = True,
) -> None:
    """Run L-BFGS on the leaf tensor ``x`` (changed in place) for ``evaluations`` calls of ``closure``.

    ``closure()`` evaluates the loss at ``x`` and leaves its gradient in ``x.grad`` (it may change ``x`` in
    place first, as the tutorial's clamp does) and returns the loss (or None: then nothing guards against
    divergence; ``guard=False`` turns it off: torch's steps exactly). ``x`` ends at the last evaluated point, or
    at the best one where the run went back to it. A gradient of exactly zero ends the run early, as in
    ``torch.optim.LBFGS``.
    """
    if evaluations <= 0:
        return
    if not x.is_contiguous():
        raise ValueError("L-BFGS needs a contiguous tensor")
    closure = torch.enable_grad()(closure)
    flat = x.data.view(-1)

    def evaluate() -> tuple[torch.Tensor, float]:
        value = closure()
        if x.grad is None:
            raise RuntimeError("the closure left no gradient in x.grad")
        value = math.nan if value is None or not guard else float(value)  # no value: no guard
        return x.grad.reshape(-1).clone(), value

    g, value = evaluate()
    count = 1
    s_hist: deque[torch.Tensor] = deque(maxlen=history_size)
    y_hist: deque[torch.Tensor] = deque(maxlen=history_size)
    rho: deque[float] = deque(maxlen=history_size)
    d, t, h_diag = g.neg(), 0.0, 1.0
    fresh = True
    best_value, best_x, best_g = value, flat.clone(), g.clone()
    damping = 1.0  # halved at each return to the best point
    while count < evaluations:
        if not bool(g.abs().max() > 0):  # an exact stationary point (e.g. content only from the content)
            return
        if not fresh and not dot(g, d) < 0:  # not a descent direction (or not finite): start again
            s_hist.clear(), y_hist.clear(), rho.clear()
            d, h_diag, fresh = g.neg(), 1.0, True
        t = (min(1.0, 1.0 / max(dot(g.abs()), 1e-30)) * lr if fresh else lr) * damping
        fresh = False
        before = flat.clone()
        flat.add_(d, alpha=t)
        g_new, value = evaluate()
        count += 1
        if value > RISE * best_value >= 0:  # diverging: back to the best point, from its gradient, with half the step
            flat.copy_(best_x)
            g = best_g.clone()
            s_hist.clear(), y_hist.clear(), rho.clear()
            d, h_diag, fresh, damping = g.neg(), 1.0, True, damping / 2
            continue
        if value < best_value:
            best_value = value
            best_x.copy_(flat), best_g.copy_(g_new)
        y = g_new - g
        s = _step_taken(before, d, t, flat)
        del before, d
        ys = dot(y, s)
        if math.isfinite(ys) and ys > 1e-10:
            s_hist.append(s), y_hist.append(y), rho.append(1.0 / ys)
            h_diag = ys / dot(y, y)
        g = g_new
        if count < evaluations:  # no direction is needed after the last evaluation
            d = _direction(g, s_hist, y_hist, rho, h_diag)
