"""DeadModeSplitter and split_mode: what a split copies, when it fires, and that it revives a dead expert."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from dhal.policies.mode_split import DeadModeSplitter, SplitConfig, split_mode
from dhal.policies.modes import HybridModes, ModesConfig

torch.set_num_threads(1)

SMALL = ModesConfig(frame_size=8, history_length=12, state_dim=6, contact_dim=2, num_modes=3, latent_dim=5,
                    classifier_hidden=(16, 8), encoder_step_dim=6, encoder_out_dim=8, decoder_hidden=(8, 8),
                    assignment="posterior", learned_noise=True, kl_weight=0.01, kl_mean_over_modes=False)


def model_and_optimizer(seed: int = 0) -> tuple[HybridModes, torch.optim.Adam]:
    torch.manual_seed(seed)
    model = HybridModes(SMALL)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def random_batch(b: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, SMALL.history_size, generator=g), torch.randn(b, SMALL.state_dim, generator=g),
            torch.randint(0, 2, (b, SMALL.contact_dim), generator=g).float())


def take_steps(model: HybridModes, optimizer: torch.optim.Optimizer, steps: int) -> None:
    for step in range(steps):
        loss, _ = model.dynamics_loss(*random_batch(32, step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_split_copies_the_donor_and_shares_its_probability_between_the_two() -> None:
    model, optimizer = model_and_optimizer()
    take_steps(model, optimizer, 3)  # the optimiser now holds moments to copy
    history = random_batch(64, 99)[0]
    with torch.no_grad():
        before = torch.softmax(model.mode_logits(history), -1)
    split_mode(model, optimizer, dead=0, donor=2, noise=0.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        after = torch.softmax(model.mode_logits(history), -1)
    for target, source in zip(model.experts[0].parameters(), model.experts[2].parameters()):
        assert torch.equal(target, source)
        assert torch.equal(optimizer.state[target]["exp_avg_sq"], optimizer.state[source]["exp_avg_sq"])
        assert optimizer.state[target]["exp_avg"] is not optimizer.state[source]["exp_avg"]
    # the two share the donor's probability equally; against mode 1 the pair weighs what the donor did
    # (the dead mode's own probability is spread over the rest by the softmax)
    assert torch.allclose(after[:, 0], after[:, 2], atol=1e-6)
    assert torch.allclose(after[:, 1] / (after[:, 0] + after[:, 2]), before[:, 1] / before[:, 2], rtol=1e-5)
    assert float(model.log_noise_var[0].detach()) == float(model.log_noise_var[2].detach())


def test_noise_makes_the_copy_differ_from_the_donor() -> None:
    model, optimizer = model_and_optimizer()
    split_mode(model, optimizer, dead=1, donor=0, noise=0.01, generator=torch.Generator().manual_seed(0))
    pairs = list(zip(model.experts[1].parameters(), model.experts[0].parameters()))
    assert all(not torch.equal(t, s) for t, s in pairs)
    with torch.no_grad():
        assert all(float((t - s).square().mean().sqrt()) < 0.05 * float(s.square().mean().sqrt()) for t, s in pairs)


def test_a_mode_cannot_be_split_into_itself() -> None:
    model, optimizer = model_and_optimizer()
    with pytest.raises(ValueError, match="two different modes"):
        split_mode(model, optimizer, dead=1, donor=1, noise=0.0, generator=torch.Generator())


def shares(*values: float) -> dict[str, torch.Tensor]:
    return {f"argmax_share_mode_{k}": torch.tensor(v) for k, v in enumerate(values)}


def test_the_splitter_fires_only_on_a_dead_expert_inside_its_steps() -> None:
    model, optimizer = model_and_optimizer()
    cfg = SplitConfig(window=10, start=20, stop_fraction=0.5, dead_share=0.25)
    splitter = DeadModeSplitter(model, optimizer, cfg, total_steps=100, seed=0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    dead = shares(0.05, 0.35, 0.60)  # 0.05 < 0.25 / 3
    for step in range(10):  # a dead expert before `start`: nothing happens
        assert splitter.after_step(step, dead) is None
    for step in range(10, 20):  # even shares: nothing happens
        assert splitter.after_step(step, shares(0.3, 0.3, 0.4)) is None
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    made = [splitter.after_step(step, dead) for step in range(20, 30)]
    assert made[:-1] == [None] * 9 and made[-1] is not None
    assert (made[-1].step, made[-1].dead, made[-1].donor) == (30, 0, 2)
    assert made[-1].dead_share == pytest.approx(0.05)
    for step in range(50, 70):  # past stop_fraction * total_steps
        assert splitter.after_step(step, dead) is None
    assert len(splitter.splits) == 1


def test_a_single_mode_is_never_split() -> None:
    torch.manual_seed(0)
    model = HybridModes(replace(SMALL, num_modes=1))
    splitter = DeadModeSplitter(model, torch.optim.Adam(model.parameters()), SplitConfig(window=1, start=0), 10, 0)
    assert all(splitter.after_step(step, shares(0.0)) is None for step in range(5))


@pytest.mark.parametrize("option, message", [
    (dict(window=0), "window >= 1"), (dict(dead_share=1.0), "dead_share"), (dict(stop_fraction=1.5), "stop_fraction"),
    (dict(noise=-1.0), "noise"),
])
def test_bad_split_settings_are_refused(option, message) -> None:
    with pytest.raises(ValueError, match=message):
        SplitConfig(**option)


@pytest.mark.parametrize("split", [True, False], ids=["split", "no_split"])
def test_a_dead_expert_comes_back_to_life_on_two_clusters(split: bool) -> None:
    """Two clusters of next states, both held by expert 1 while the classifier never picks expert 0:
    with the splitter each of the two takes one cluster; without it expert 0 stays dead."""
    cfg = replace(SMALL, num_modes=2)
    torch.manual_seed(0)
    model = HybridModes(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        model.classifier[-1].bias.copy_(torch.tensor([-20.0, 20.0]))  # expert 0 dead from the start
    g = torch.Generator().manual_seed(1)
    n = 2048
    cluster = torch.randint(0, 2, (n,), generator=g)
    history = torch.randn(n, cfg.history_size, generator=g) * 0.1
    history[:, 0] = cluster.float() * 2 - 1  # the oldest frame tells the cluster apart
    next_state = (cluster.float() * 2 - 1).unsqueeze(1).expand(-1, cfg.state_dim) * 2 + 0.05 * torch.randn(
        n, cfg.state_dim, generator=g)
    contacts = torch.zeros(n, cfg.contact_dim)
    splitter = DeadModeSplitter(model, optimizer, SplitConfig(window=20, start=20, stop_fraction=0.5), 600, seed=0)
    for step in range(600):
        idx = torch.randint(0, n, (64,), generator=g)
        loss, stats = model.dynamics_loss(history[idx], next_state[idx], contacts[idx], generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if split:
            splitter.after_step(step, stats)
    with torch.no_grad():
        picked = model.mode_logits(history).argmax(-1)
    agreement = float((picked == cluster).float().mean())
    if split:  # each expert now holds (almost) one whole cluster
        assert len(splitter.splits) >= 1 and splitter.splits[0].dead == 0
        assert max(agreement, 1 - agreement) > 0.95
    else:
        assert float((picked == 0).float().mean()) < 0.05
