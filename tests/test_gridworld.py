import numpy as np
import pytest

from ssl_tutorial.data.gridworld import (
    COLOURS,
    PAD,
    SEGMENT_LENGTHS,
    Task,
    bfs_distances,
    decode,
    encode,
    hand_made_tasks,
    is_valid,
    optimal_return,
    param_sizes,
    params_task,
    random_params,
    random_task,
    random_tasks,
    render,
    segment_tasks,
    shortest_path,
    shortest_paths,
    vocab_size,
)


def test_task_normalises_walls_and_round_trips_through_grid():
    t = Task(7, ((3, 3), (1, 2), (3, 3)), (0, 0), (6, 6))
    assert t.walls == ((1, 2), (3, 3)) and t == Task(7, ((1, 2), (3, 3)), (0, 0), (6, 6))
    g = t.grid()
    assert g.shape == (7, 7) and g.dtype == np.int8
    assert g[1, 2] == g[3, 3] == 1 and g[0, 0] == 2 and g[6, 6] == 3 and (g == 0).sum() == 45
    assert Task.from_grid(g) == t


def test_bfs_optimum_by_hand():
    assert shortest_path(Task(7, (), (0, 0), (6, 6))) == 12  # empty grid: Manhattan distance 6 + 6
    # A wall across row 3 with its only gap at column 6: (0,0) -> (3,6) is 9 moves, (3,6) -> (6,0) another 9.
    line = Task(7, tuple((3, c) for c in range(6)), (0, 0), (6, 0))
    assert shortest_path(line) == 18
    enclosed = Task(7, ((2, 3), (4, 3), (3, 2), (3, 4)), (0, 0), (3, 3))
    assert shortest_path(enclosed) is None and not is_valid(enclosed)
    assert shortest_path(Task(7, ((5, 6), (6, 5)), (0, 0), (6, 6))) is None  # corner cut off


def test_bfs_distances_consistent_with_shortest_path():
    d = bfs_distances(Task(7, (), (0, 0), (6, 6)))
    assert (d == np.add.outer(np.arange(7), np.arange(7))).all()
    for t in random_tasks(30, seed=1):
        d = bfs_distances(t)
        assert d[t.start] == 0 and d[t.goal] == shortest_path(t)
        assert all(d[w] == -1 for w in t.walls)
        reached = d >= 0
        # neighbouring reachable cells differ by at most one move
        assert (np.abs(np.diff(d, axis=0))[reached[1:] & reached[:-1]] <= 1).all()
        assert (np.abs(np.diff(d, axis=1))[reached[:, 1:] & reached[:, :-1]] <= 1).all()


def test_hand_made_tasks_and_their_optimum():
    tasks = hand_made_tasks()
    assert {name: shortest_path(t) for name, t in tasks.items()} == {
        "two_rooms": 12, "corridor": 24, "spiral": 30, "maze": 16}
    assert all(t.size == 7 and is_valid(t) for t in tasks.values())
    assert [len(t.walls) for t in tasks.values()] == [6, 12, 18, 18]


def test_random_tasks_valid_and_reproducible():
    tasks = random_tasks(200, size=7, max_walls=12, seed=0)
    assert all(is_valid(t) and t.size == 7 and len(t.walls) <= 12 for t in tasks)
    assert len({len(t.walls) for t in tasks}) == 13  # every wall count 0..12 occurs
    assert tasks == random_tasks(200, seed=0)
    assert tasks != random_tasks(200, seed=1)
    assert random_task(seed=3) == random_task(seed=3)
    rng = np.random.default_rng(0)
    assert random_task(seed=rng) != random_task(seed=rng)  # a Generator is advanced
    assert all(is_valid(t) for t in random_tasks(20, size=3, max_walls=7, seed=0))  # the tightest budget
    assert random_tasks(0) == []


def test_encode_layout_and_round_trip():
    t = Task(7, ((0, 1), (2, 3)), (6, 6), (0, 0))
    tokens = encode(t)
    assert tokens.dtype == np.int64 and tokens.tolist() == [2, 18] + [PAD] * 10 + [49, 1]
    assert vocab_size(7) == 50 and tokens.max() < vocab_size(7)
    for t in random_tasks(100, seed=2):
        tokens = encode(t, max_walls=12)
        assert len(tokens) == 14 and decode(tokens, size=7) == t
        walls = tokens[:-2][tokens[:-2] != PAD]
        assert (np.diff(walls) > 0).all() and (tokens[len(walls):-2] == PAD).all()
    for t in random_tasks(10, size=9, max_walls=20, seed=0):
        assert decode(encode(t, max_walls=20), size=9) == t
    maze = hand_made_tasks()["maze"]
    assert decode(encode(maze, max_walls=18)) == maze


def test_decode_is_forgiving():
    # PAD in the middle, a duplicate wall, and walls under the start (token 1) and the goal (token 49)
    t = decode([9, PAD, 9, 1, PAD, 17, 49, 1, 49])
    assert t == Task(7, ((1, 1), (2, 2)), (0, 0), (6, 6)) and is_valid(t)
    assert decode(np.array([PAD, PAD, 5, 5])).start == decode([5, 5]).goal == (0, 4)  # start == goal is kept ...
    assert not is_valid(decode([5, 5]))  # ... and flagged by is_valid


def test_optimal_return_bounds():
    empty = Task(7, (), (0, 0), (6, 6))
    assert optimal_return(empty) == pytest.approx(1 - 0.9 * 12 / 196)
    assert optimal_return(empty, max_steps=12) == pytest.approx(0.1)
    assert optimal_return(empty, max_steps=11) == 0.0  # optimum beyond the step budget
    assert optimal_return(Task(7, ((2, 3), (4, 3), (3, 2), (3, 4)), (0, 0), (3, 3))) == 0.0
    values = [optimal_return(t) for t in random_tasks(100, seed=4)]
    assert all(0.775 < v < 1 for v in values)
    near, far = Task(7, (), (0, 0), (0, 1)), hand_made_tasks()["spiral"]
    assert optimal_return(near) > optimal_return(far)


def test_render_shape_and_colours():
    t = Task(7, ((1, 1),), (0, 0), (6, 6))
    img = render(t)
    assert img.shape == (7, 7, 3) and img.dtype.kind == "f" and 0 <= img.min() and img.max() <= 1
    assert (img[3, 3] == 1).all()  # free: white
    assert np.allclose(img[1, 1], img[1, 1][0]) and img[1, 1][0] < 0.5  # wall: dark gray
    assert img[0, 0].argmax() == 1 and img[6, 6].argmax() == 0  # start green, goal red
    assert (img == COLOURS[t.grid()]).all()


def test_is_valid_rejects_bad_tasks():
    assert not is_valid(Task(7, ((0, 0),), (0, 0), (6, 6)))  # start on a wall
    assert not is_valid(Task(7, ((6, 6),), (0, 0), (6, 6)))  # goal on a wall
    assert not is_valid(Task(7, (), (3, 3), (3, 3)))  # start == goal
    assert not is_valid(Task(7, ((7, 0),), (0, 0), (6, 6)))  # wall off the grid
    assert not is_valid(Task(7, (), (0, 0), (0, 7)))  # goal off the grid
    assert shortest_path(Task(7, ((0, 0),), (0, 0), (6, 6))) is None


def test_bad_inputs_raise_one_line_errors():
    cases = [
        (lambda: Task(2, (), (0, 0), (1, 1)), "size must be at least 3"),
        (lambda: random_task(size=2), "size must be at least 3"),
        (lambda: random_task(size=3, max_walls=8), "max_walls must lie in 0..7"),
        (lambda: random_tasks(5, max_walls=-1), "max_walls"),
        (lambda: random_tasks(-1), "non-negative"),
        (lambda: encode(hand_made_tasks()["spiral"], max_walls=12), "18 walls, more than max_walls=12"),
        (lambda: decode([3, 0], size=7), "not PAD"),
        (lambda: decode([3, 50, 1], size=7), r"0\.\.49"),
        (lambda: decode([[1, 2]]), "1-D integer"),
        (lambda: decode([1.0, 2.0]), "1-D integer"),
        (lambda: Task(7, (), (0, 0), (0, 7)).grid(), "outside the 7x7 grid"),
        (lambda: shortest_path(Task(7, (), (0, 0), (0, 7))), "outside"),
        (lambda: Task.from_grid(np.zeros((3, 4))), "square"),
        (lambda: Task.from_grid(np.zeros((3, 3))), "exactly one start"),
        (lambda: Task.from_grid(np.full((3, 3), 5)), "grid codes"),
        (lambda: optimal_return(Task(7, (), (0, 0), (6, 6)), max_steps=0), "max_steps"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- the segment world
def segment(on=1, vertical=0, row=0, col=0, length=0):
    return [on, vertical, row, col, length]


def params(*segments, start=(0, 0), goal=(6, 6), n_segments=5):
    off = [segment(on=0)] * (n_segments - len(segments))
    return np.array(sum((list(s) for s in (*segments, *off)), []) + [*start, *goal])


def test_param_sizes():
    assert SEGMENT_LENGTHS == (2, 3, 4, 5)
    assert len(param_sizes()) == 29 and len(param_sizes(9, 2)) == 14
    assert param_sizes(7, 3) == [2, 2, 7, 7, 4] * 3 + [7, 7, 7, 7]
    with pytest.raises(ValueError, match="segments must be at least 1, got 0"):
        param_sizes(7, 0)
    with pytest.raises(ValueError, match="size must be at least 3"):
        param_sizes(2, 3)


def test_params_task_by_hand():
    assert params_task(params(segment(row=2, col=1, length=0))) == Task(7, ((2, 1), (2, 2)), (0, 0), (6, 6))
    vertical = params_task(params(segment(vertical=1, row=1, col=4, length=2)))
    assert vertical.walls == ((1, 4), (2, 4), (3, 4), (4, 4))
    cut = params_task(params(segment(row=3, col=5, length=3)))  # 5 cells from column 5: only 2 on the grid
    assert cut.walls == ((3, 5), (3, 6))
    assert params_task(params(segment(vertical=1, row=6, col=0, length=3))).walls == ((6, 0),)
    two = params_task(params(segment(row=0, col=2, length=0), segment(vertical=1, row=0, col=3, length=1)))
    assert two.walls == ((0, 2), (0, 3), (1, 3), (2, 3))  # overlapping segments are merged
    off = params(segment(row=2, col=1), segment(on=0, vertical=1, row=4, col=4, length=3))
    assert params_task(off).walls == ((2, 1), (2, 2))  # an off segment adds nothing
    assert params_task(params(segment(on=0, row=2, col=1))).walls == ()  # the first segment can be off too
    under = params_task(params(segment(row=0, col=0, length=3), start=(0, 0), goal=(0, 4)))
    assert under.walls == ((0, 1), (0, 2), (0, 3)) and under.start == (0, 0) and under.goal == (0, 4)
    small = params_task([1, 1, 0, 2, 1, 0, 0, 4, 4], size=5, segments=1)
    assert small == Task(5, ((0, 2), (1, 2), (2, 2)), (0, 0), (4, 4))


def test_params_task_bad_inputs():
    good = params(segment())
    cases = [
        (lambda: params_task(good[:-1]), r"params must be 29 integers for a 7x7 grid with 5 segments, got shape \(28,\)"),
        (lambda: params_task(good[None]), "params must be 29 integers"),
        (lambda: params_task(good.astype(float)), "float64"),
        (lambda: params_task(good, segments=4), "params must be 24 integers"),
        (lambda: params_task(params(segment(length=4))), "out of range"),
        (lambda: params_task(params(segment(row=7))), "out of range"),
        (lambda: params_task(params(segment(on=2))), "out of range"),
        (lambda: params_task(params(segment(), goal=(6, -1))), "out of range"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


def test_random_params():
    p = random_params(100, seed=0)
    assert p.shape == (100, 29) and p.dtype == np.int64
    assert (p >= 0).all() and (p < np.array(param_sizes())).all()
    assert (p[:, 0] == 1).all() and (p[:, 5::5][:, :4] == 0).any()  # the first segment on, others sometimes off
    assert (random_params(100, seed=0) == p).all() and not (random_params(100, seed=1) == p).all()
    assert all(is_valid(params_task(row)) for row in p)
    q = random_params(30, size=5, segments=2, seed=3)
    assert q.shape == (30, 14) and all(is_valid(params_task(row, 5, 2)) for row in q)
    empty = random_params(0, segments=3)
    assert empty.shape == (0, 19) and empty.dtype == np.int64
    with pytest.raises(ValueError, match="non-negative"):
        random_params(-1)


def test_segment_tasks():
    tasks = segment_tasks(50, seed=2)
    assert len(tasks) == 50 and all(isinstance(t, Task) and is_valid(t) for t in tasks)
    assert tasks == [params_task(p) for p in random_params(50, seed=2)]
    small = segment_tasks(10, size=5, segments=2, seed=1)
    assert small == [params_task(p, 5, 2) for p in random_params(10, size=5, segments=2, seed=1)]
    assert segment_tasks(0) == []


def test_shortest_paths_match_shortest_path():
    rng = np.random.default_rng(0)
    unfiltered = []  # random walls, start and goal, solvable or not, start or goal possibly on a wall
    for _ in range(60):
        cells = [tuple(int(x) for x in c) for c in rng.integers(0, 7, (int(rng.integers(0, 25)) + 2, 2))]
        unfiltered.append(Task(7, tuple(cells[:-2]), cells[-2], cells[-1]))
    tasks = [*random_tasks(100, seed=5), *segment_tasks(130, seed=5), *hand_made_tasks().values(), *unfiltered,
             Task(7, ((2, 3), (4, 3), (3, 2), (3, 4)), (0, 0), (3, 3)),  # enclosed goal
             Task(7, ((0, 0),), (0, 0), (6, 6)), Task(7, ((6, 6),), (0, 0), (6, 6)),  # start / goal on a wall
             Task(7, (), (3, 3), (3, 3)), Task(7, (), (0, 0), (6, 6))]
    expected = [-1 if d is None else d for d in map(shortest_path, tasks)]
    got = shortest_paths(tasks)
    assert got.dtype == np.int64 and got.shape == (len(tasks),) and got.tolist() == expected
    assert got[-1] == 12 and got[-2] == 0 and (got[-5:-2] == -1).all() and (got == -1).sum() > 3
    assert shortest_paths(iter(tasks[:3])).tolist() == expected[:3]  # any iterable
    nine = random_tasks(20, size=9, max_walls=30, seed=0)
    assert shortest_paths(nine).tolist() == [shortest_path(t) for t in nine]


def test_shortest_paths_edge_cases():
    empty = shortest_paths([])
    assert empty.shape == (0,) and empty.dtype == np.int64
    with pytest.raises(ValueError, match="same grid size"):
        shortest_paths([Task(7, (), (0, 0), (1, 1)), Task(5, (), (0, 0), (1, 1))])
    with pytest.raises(ValueError, match="a cell of task 1 lies outside the 7x7 grid"):
        shortest_paths([Task(7, (), (0, 0), (1, 1)), Task(7, ((7, 0),), (0, 0), (1, 1))])
