"""MAML: the second-order (DiCE) meta-gradient is unbiased; first-order differs from it."""

from __future__ import annotations

import torch

from agents.maml import adapt_parameters, inner_objective

REWARDS = torch.tensor([1.0, 0.0, -0.5], dtype=torch.float64)
STEPS = 2  # each episode: two independent pulls of a 3-armed bandit
INNER_LR = 3.0  # large enough that the curvature term matters


def exact_return(theta: torch.Tensor) -> torch.Tensor:
    return STEPS * (torch.softmax(theta, -1) * REWARDS).sum()


def exact_meta_objective(theta: torch.Tensor) -> torch.Tensor:
    """The outer loss after one exact inner step. ``inner_objective`` averages over the T
    steps, so its expectation is -J / T."""
    theta = theta.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(-exact_return(theta) / STEPS, theta, create_graph=True)
    return -exact_return(theta - INNER_LR * grad) / STEPS


def sample_episodes(theta: torch.Tensor, episodes: int, gen: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(T, E) log-probabilities under ``theta`` (differentiable), actions' rewards-to-go,
    validity."""
    probs = torch.softmax(theta.detach(), -1)
    actions = torch.multinomial(probs, STEPS * episodes, replacement=True, generator=gen)
    actions = actions.reshape(STEPS, episodes)
    logprob = torch.log_softmax(theta, -1)[actions]
    rewards = REWARDS[actions]
    to_go = rewards.flip(0).cumsum(0).flip(0)
    return logprob, to_go, torch.ones_like(to_go)


def estimated_meta_gradient(estimator: str, episodes: int = 400_000) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    theta = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64, requires_grad=True)
    params = {"theta": theta}
    logprob, to_go, valid = sample_episodes(params["theta"], episodes, gen)
    adapted = adapt_parameters(params, inner_objective(logprob, to_go, valid, estimator),
                               INNER_LR, create_graph=estimator != "first_order")
    # outer: fresh episodes from the adapted policy, policy-gradient surrogate
    logprob, to_go, valid = sample_episodes(adapted["theta"], episodes, gen)
    outer = inner_objective(logprob, to_go, valid, "lvc")
    (grad,) = torch.autograd.grad(outer, theta)
    return grad


def finite_difference_meta_gradient(eps: float = 1e-5) -> torch.Tensor:
    theta = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)
    grad = torch.zeros(3, dtype=torch.float64)
    for i in range(3):
        step = torch.zeros(3, dtype=torch.float64)
        step[i] = eps
        grad[i] = (exact_meta_objective(theta + step) - exact_meta_objective(theta - step)) \
            / (2 * eps)
    return grad


def test_dice_meta_gradient_matches_finite_differences_and_first_order_does_not() -> None:
    true = finite_difference_meta_gradient()
    dice = estimated_meta_gradient("dice")
    first_order = estimated_meta_gradient("first_order")
    scale = true.norm()
    assert (dice - true).norm() < 0.02 * scale, (dice, true)
    assert (first_order - true).norm() > 0.2 * scale, (first_order, true)
    assert (first_order - dice).norm() > 0.2 * scale


def test_all_estimators_share_the_inner_step() -> None:
    gen = torch.Generator().manual_seed(1)
    theta = torch.tensor([0.5, 0.0, -0.5], dtype=torch.float64, requires_grad=True)
    logprob, to_go, valid = sample_episodes(theta, 1000, gen)
    steps = [adapt_parameters({"theta": theta},
                              inner_objective(logprob, to_go, valid, est), INNER_LR,
                              create_graph=True)["theta"]
             for est in ("first_order", "dice", "lvc")]
    assert torch.allclose(steps[0], steps[1]) and torch.allclose(steps[0], steps[2])


def test_inner_step_gradient_clipping_bounds_the_step_and_keeps_its_direction() -> None:
    torch.manual_seed(0)
    params = {"a": torch.randn(5, requires_grad=True), "b": torch.randn(3, requires_grad=True)}

    def loss() -> torch.Tensor:
        return 100.0 * (params["a"] ** 2).sum() + 50.0 * params["b"].sum()

    free = adapt_parameters(params, loss(), 0.01, create_graph=False)
    clipped = adapt_parameters(params, loss(), 0.01, create_graph=False, max_grad_norm=1.0)
    step_free = torch.cat([(params[k] - free[k]).flatten() for k in params])
    step = torch.cat([(params[k] - clipped[k]).flatten() for k in params])
    assert step_free.norm() > 0.01 * 1.0  # the clip is active in this case
    torch.testing.assert_close(step.norm(), torch.tensor(0.01), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(step / step.norm(), step_free / step_free.norm())
    # a large bound changes nothing
    loose = adapt_parameters(params, loss(), 0.01, create_graph=False, max_grad_norm=1e9)
    for k in params:
        torch.testing.assert_close(loose[k], free[k])
