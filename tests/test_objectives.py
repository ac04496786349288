import torch
import torch.nn.functional as F

from components.objectives import IGNORE, mask_tokens, mask_values, masked_l1_loss, masked_lm_loss, next_token_targets

MASK_ID = 1


def test_masking_touches_only_real_positions_at_the_given_ratio():
    tokens = torch.randint(2, 17, (64, 100))
    mask = torch.arange(100)[None, :] < torch.randint(20, 100, (64,))[:, None]
    inputs, targets = mask_tokens(tokens, mask, 0.3, MASK_ID, torch.Generator().manual_seed(0))
    chosen = targets != IGNORE
    assert not (chosen & ~mask).any()
    assert torch.equal(inputs[chosen], torch.full_like(inputs[chosen], MASK_ID))
    assert torch.equal(inputs[~chosen], tokens[~chosen])
    assert torch.equal(targets[chosen], tokens[chosen])
    assert abs(chosen.sum() / mask.sum() - 0.3) < 0.03


def test_masked_lm_loss_counts_masked_positions_only():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(2, 17, (4, 30), generator=g)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    _, targets = mask_tokens(tokens, mask, 0.2, MASK_ID, g)
    logits = torch.randn(4, 30, 17, generator=g)
    loss, correct, n = masked_lm_loss(logits, targets)
    chosen = targets != IGNORE
    assert n == int(chosen.sum())
    torch.testing.assert_close(loss, F.cross_entropy(logits[chosen], targets[chosen]))
    # changing predictions at unmasked positions changes nothing
    other = logits.clone()
    other[~chosen] = torch.randn_like(other[~chosen]) * 100
    torch.testing.assert_close(masked_lm_loss(other, targets)[0], loss)
    assert masked_lm_loss(other, targets)[1] == correct


def test_same_generator_seed_same_mask():
    tokens = torch.randint(2, 17, (8, 40))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    a = mask_tokens(tokens, mask, 0.15, MASK_ID, torch.Generator().manual_seed(7))
    b = mask_tokens(tokens, mask, 0.15, MASK_ID, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_next_token_targets_shift_left_and_ignore_the_last_real_position_and_padding():
    tokens = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]])
    mask = tokens != 0
    assert next_token_targets(tokens, mask).tolist() == [[6, 7, IGNORE, IGNORE, IGNORE],
                                                        [9, 10, 11, 12, IGNORE]]


def test_value_masking_zeroes_chosen_positions_and_adds_an_indicator_channel():
    x = torch.rand(8, 30, 3) + 0.1
    mask = torch.arange(30)[None, :] < torch.randint(5, 30, (8,))[:, None]
    inputs, chosen = mask_values(x, mask, 0.5, torch.Generator().manual_seed(0))
    assert inputs.shape == (8, 30, 4) and not (chosen & ~mask).any() and chosen.any()
    assert (inputs[chosen][:, :3] == 0).all() and (inputs[chosen][:, 3] == 1).all()
    assert torch.equal(inputs[~chosen][:, :3], x[~chosen]) and (inputs[~chosen][:, 3] == 0).all()
    pred = x.clone()
    pred[~chosen] += 5.0  # errors outside the chosen positions carry no loss
    pred[chosen] += 0.25
    loss, _, n = masked_l1_loss(pred, x, chosen)
    assert n == int(chosen.sum()) and abs(loss.item() - 0.25) < 1e-6
