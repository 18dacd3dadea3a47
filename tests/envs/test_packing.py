import torch

from dhal.envs.packing import pack_rows, unpack_rows


def test_rows_of_several_shapes_pack_into_one_table_and_come_back_as_its_views():
    scalar, per_foot, grid = torch.arange(3.0), torch.rand(3, 4), torch.rand(3, 2, 3)
    table = pack_rows((scalar, per_foot, grid))
    assert table.shape == (3, 1 + 4 + 6)
    assert torch.equal(table[:, 0], scalar) and torch.equal(table[:, 1:5], per_foot)
    views = unpack_rows(table, (scalar, per_foot, grid))
    for view, original in zip(views, (scalar, per_foot, grid)):
        assert view.shape == original.shape and torch.equal(view, original)
        assert view._base is table  # a view, not a copy
    table[1] = 0.0
    assert not views[2][1].any() and views[2][0].equal(grid[0])


def test_zero_rows_zeroes_whole_rows_of_any_rank_nan_included():
    from dhal.envs.packing import row_mask, zero_rows

    values = torch.rand(3, 2, 4)
    values[1, 0, 0] = float("nan")
    rows = torch.tensor([False, True, False])
    assert row_mask(rows, values).shape == (3, 1, 1)
    zeroed = zero_rows(values, rows)
    assert not zeroed[1].any() and torch.equal(zeroed[[0, 2]], values[[0, 2]])
    assert torch.equal(zero_rows(values[:, 0, 0], rows), torch.where(rows, 0.0, values[:, 0, 0]))
