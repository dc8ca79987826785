import numpy as np
import pytest

from ssl_tutorial.data.gridworld import (
    COLOURS,
    PAD,
    Task,
    bfs_distances,
    decode,
    encode,
    hand_made_tasks,
    is_valid,
    optimal_return,
    random_task,
    random_tasks,
    render,
    shortest_path,
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
