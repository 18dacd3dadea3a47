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
