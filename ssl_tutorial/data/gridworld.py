"""Procedural gridworld navigation tasks: the task space of CLUTR's curriculum.

Taught in notebooks/10_theory/06_clutr.ipynb.

CLUTR (Azad et al., "CLUTR: Curriculum Learning via Unsupervised Task Representation Learning", ICML 2023) learns
a latent space of *tasks* with a VAE, then lets a teacher search that space for tasks of high regret.
Here a task is a ``size x size`` grid (7 x 7 by default) holding a set of wall cells, a start cell and a goal cell;
the agent moves to one of its 4 neighbours per step and must reach the goal.

Two task worlds:

* **the segment world** (what the notebook uses): walls come as straight segments. A task is a vector of small
  integer parameters (:func:`param_sizes`, :func:`params_task`): per segment an on flag, an orientation, the row
  and column of its first cell and a length; then the start's and the goal's row and column. Every vector of
  in-range integers is a task, so a VAE's output always decodes. :func:`random_params` / :func:`segment_tasks` draw
  solvable ones.
* **random cells**: :func:`random_task` draws 0..max_walls walls at distinct cells and resamples until the goal is
  reachable (breadth-first search). Its token encoding, the paper's MiniGrid parameterisation: cell (r, c) is the
  token ``r * size + c + 1``, ``PAD = 0``, the vocabulary has ``size*size + 1`` tokens (:func:`vocab_size`), and a
  task is the fixed-length sequence of ``max_walls + 2`` tokens

      [wall_1, ..., wall_k, PAD, ..., PAD, start, goal]        (walls sorted, k <= max_walls)

  :func:`decode` is forgiving: it drops PAD wherever it sits, merges duplicate walls and drops walls under the
  start or the goal. (A VAE over these tokens did not learn at our budget: random cells have no structure to
  compress; see ``methods/clutr.py``.)

The result of a decoder may be unsolvable: check it with :func:`is_valid` (or many at once with
:func:`shortest_paths`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

PAD = 0
FREE, WALL, START, GOAL = 0, 1, 2, 3
COLOURS = np.array([[1.0, 1.0, 1.0], [0.25, 0.25, 0.25], [0.2, 0.7, 0.3], [0.85, 0.15, 0.15]])  # row = grid code
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))

Cell = tuple[int, int]


@dataclass(frozen=True)
class Task:
    """One navigation task. ``walls`` is stored sorted and without duplicates, so equal layouts compare equal."""

    size: int
    walls: tuple[Cell, ...]
    start: Cell
    goal: Cell

    def __post_init__(self):
        _check_size(self.size)
        object.__setattr__(self, "walls", tuple(sorted({(int(r), int(c)) for r, c in self.walls})))
        object.__setattr__(self, "start", (int(self.start[0]), int(self.start[1])))
        object.__setattr__(self, "goal", (int(self.goal[0]), int(self.goal[1])))

    def grid(self) -> np.ndarray:
        """The layout as a (size, size) int8 array: 0 free, 1 wall, 2 start, 3 goal."""
        if not all(_inside(cell, self.size) for cell in (*self.walls, self.start, self.goal)):
            raise ValueError(f"a cell of this task lies outside the {self.size}x{self.size} grid")
        g = np.zeros((self.size, self.size), np.int8)
        for cell in self.walls:
            g[cell] = WALL
        g[self.start], g[self.goal] = START, GOAL
        return g

    @classmethod
    def from_grid(cls, grid) -> Task:
        """The task drawn by a square array of codes 0-3 (as :meth:`grid` returns), one start and one goal."""
        g = np.asarray(grid)
        if g.ndim != 2 or g.shape[0] != g.shape[1]:
            raise ValueError(f"a grid must be a square 2-D array, got shape {g.shape}")
        if not np.isin(g, (FREE, WALL, START, GOAL)).all():
            raise ValueError("grid codes must be 0 (free), 1 (wall), 2 (start) or 3 (goal)")
        starts, goals = np.argwhere(g == START), np.argwhere(g == GOAL)
        if len(starts) != 1 or len(goals) != 1:
            raise ValueError(f"a grid needs exactly one start (2) and one goal (3), got {len(starts)} and {len(goals)}")
        walls = [tuple(cell) for cell in np.argwhere(g == WALL).tolist()]
        return cls(g.shape[0], tuple(walls), tuple(starts[0].tolist()), tuple(goals[0].tolist()))


def bfs_distances(task: Task) -> np.ndarray:
    """Fewest moves from the start to every cell, (size, size) int64; -1 for walls and unreachable cells."""
    if not all(_inside(cell, task.size) for cell in (*task.walls, task.start)):
        raise ValueError(f"the start or a wall lies outside the {task.size}x{task.size} grid")
    blocked = np.zeros((task.size, task.size), bool)
    for cell in task.walls:
        blocked[cell] = True
    dist = np.full((task.size, task.size), -1, np.int64)
    if blocked[task.start]:
        return dist
    dist[task.start] = 0
    queue = deque([task.start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES:
            nxt = (r + dr, c + dc)
            if _inside(nxt, task.size) and not blocked[nxt] and dist[nxt] < 0:
                dist[nxt] = dist[r, c] + 1
                queue.append(nxt)
    return dist


def shortest_path(task: Task) -> int | None:
    """The BFS optimum: fewest 4-neighbour moves from start to goal avoiding walls, None if unreachable."""
    if not _inside(task.goal, task.size):
        raise ValueError(f"goal {task.goal} lies outside the {task.size}x{task.size} grid")
    d = int(bfs_distances(task)[task.goal])
    return None if d < 0 else d


def shortest_paths(tasks) -> np.ndarray:
    """:func:`shortest_path` of many same-size tasks at once, (N,) int64 with -1 where the goal is unreachable
    or lies under a wall: a breadth-first search run on all grids together, one array operation per move."""
    tasks = list(tasks)
    if not tasks:
        return np.zeros(0, np.int64)
    size = tasks[0].size
    if any(t.size != size for t in tasks):
        raise ValueError("all tasks must have the same grid size")
    n = len(tasks)
    free = np.ones((n, size, size), bool)
    reached = np.zeros((n, size, size), bool)
    goal = np.zeros((n, size, size), bool)
    for i, t in enumerate(tasks):
        if not all(_inside(cell, size) for cell in (*t.walls, t.start, t.goal)):
            raise ValueError(f"a cell of task {i} lies outside the {size}x{size} grid")
        for cell in t.walls:
            free[i][cell] = False
        reached[i][t.start] = free[i][t.start]
        goal[i][t.goal] = True
    dist = np.full(n, -1, np.int64)
    for d in range(size * size):
        hit = (reached & goal).any((1, 2)) & (dist < 0)
        dist[hit] = d
        grown = reached.copy()
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown[:, :, 1:] |= reached[:, :, :-1]
        grown[:, :, :-1] |= reached[:, :, 1:]
        grown &= free
        if (grown == reached).all():
            break
        reached = grown
    return dist


def is_valid(task: Task) -> bool:
    """True when every cell is on the grid, start != goal, neither is a wall, and the goal is reachable."""
    if not all(_inside(cell, task.size) for cell in (*task.walls, task.start, task.goal)):
        return False
    if task.start == task.goal or task.start in task.walls or task.goal in task.walls:
        return False
    return shortest_path(task) is not None


def random_task(size: int = 7, max_walls: int = 12, seed: int | np.random.Generator = 0) -> Task:
    """A solvable task: uniform 0..max_walls walls, start and goal at distinct cells; resampled until valid.
    ``seed`` is an int or a ``np.random.Generator`` (which is advanced)."""
    _check_budget(size, max_walls)
    rng = np.random.default_rng(seed)
    for _ in range(10_000):
        n_walls = int(rng.integers(0, max_walls + 1))
        cells = [divmod(int(i), size) for i in rng.choice(size * size, n_walls + 2, replace=False)]
        task = Task(size, tuple(cells[:n_walls]), cells[-2], cells[-1])
        if shortest_path(task) is not None:
            return task
    raise RuntimeError(f"no solvable {size}x{size} task with up to {max_walls} walls in 10000 draws")


def random_tasks(n: int, size: int = 7, max_walls: int = 12, seed: int = 0) -> list[Task]:
    """``n`` solvable tasks from one generator seeded by ``seed`` (the domain-randomisation distribution)."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    _check_budget(size, max_walls)
    rng = np.random.default_rng(seed)
    return [random_task(size, max_walls, rng) for _ in range(n)]


SEGMENT_LENGTHS = (2, 3, 4, 5)
SEGMENT_FIELDS = ("on", "vertical", "row", "col", "length")


def param_sizes(size: int = 7, segments: int = 5) -> list[int]:
    """How many values each task parameter takes, in the order of :func:`params_task`: per wall segment
    ``on`` (2), ``vertical`` (2), ``row`` and ``col`` of its first cell (size each), ``length`` (an index into
    ``SEGMENT_LENGTHS``); then the start's row and column and the goal's row and column (size each)."""
    _check_size(size)
    if segments < 1:
        raise ValueError(f"segments must be at least 1, got {segments}")
    return [2, 2, size, size, len(SEGMENT_LENGTHS)] * segments + [size] * 4


def params_task(params, size: int = 7, segments: int = 5) -> Task:
    """The task a parameter vector describes (CLUTR's task parameterisation, see :func:`param_sizes`).

    Every segment that is ``on`` walls off ``SEGMENT_LENGTHS[length]`` cells going right (or down if
    ``vertical``) from (row, col), cut at the border; walls under the start or the goal are dropped. Any vector
    of in-range integers is a task, so a VAE's output always decodes; it may still be unsolvable
    (:func:`is_valid`)."""
    sizes = param_sizes(size, segments)
    p = np.asarray(params)
    if p.shape != (len(sizes),) or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"params must be {len(sizes)} integers for a {size}x{size} grid with {segments} segments, "
                         f"got shape {p.shape}, {p.dtype}")
    if (p < 0).any() or (p >= np.array(sizes)).any():
        raise ValueError(f"a parameter is out of range; the ranges are {sizes}")
    walls = set()
    for k in range(segments):
        on, vertical, r, c, li = (int(x) for x in p[5 * k: 5 * k + 5])
        if on:
            cells = ((r + j, c) if vertical else (r, c + j) for j in range(SEGMENT_LENGTHS[li]))
            walls |= {cell for cell in cells if _inside(cell, size)}
    start, goal = (int(p[-4]), int(p[-3])), (int(p[-2]), int(p[-1]))
    return Task(size, tuple(walls - {start, goal}), start, goal)


def random_params(n: int, size: int = 7, segments: int = 5, seed: int = 0) -> np.ndarray:
    """``n`` parameter vectors (n, len(param_sizes)) drawn uniformly, the first segment always on, kept only when
    start != goal and the goal is reachable: the random task distribution of the segment world."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    sizes = np.array(param_sizes(size, segments))
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        batch = (rng.random((max(64, 2 * (n - len(out))), len(sizes))) * sizes).astype(np.int64)
        batch[:, 0] = 1
        tasks = [params_task(p, size, segments) for p in batch]
        steps = shortest_paths(tasks)
        out += [p for p, t, d in zip(batch, tasks, steps) if d > 0]  # reachable, and start != goal
    return np.stack(out[:n]) if n else np.zeros((0, len(sizes)), np.int64)


def segment_tasks(n: int, size: int = 7, segments: int = 5, seed: int = 0) -> list[Task]:
    """The tasks of :func:`random_params` (domain randomisation over the segment world)."""
    return [params_task(p, size, segments) for p in random_params(n, size, segments, seed)]


def vocab_size(size: int = 7) -> int:
    """Number of distinct tokens: PAD plus one per cell."""
    return size * size + 1


def encode(task: Task, max_walls: int = 12) -> np.ndarray:
    """The task as ``max_walls + 2`` int64 tokens: sorted wall cells, PAD up to max_walls, start, goal."""
    if len(task.walls) > max_walls:
        raise ValueError(f"the task has {len(task.walls)} walls, more than max_walls={max_walls}")
    if not all(_inside(cell, task.size) for cell in (*task.walls, task.start, task.goal)):
        raise ValueError(f"a cell of this task lies outside the {task.size}x{task.size} grid")
    tokens = np.full(max_walls + 2, PAD, np.int64)
    tokens[: len(task.walls)] = [r * task.size + c + 1 for r, c in task.walls]
    tokens[-2:] = [r * task.size + c + 1 for r, c in (task.start, task.goal)]
    return tokens


def decode(tokens, size: int = 7) -> Task:
    """The task a token sequence describes; PAD anywhere among the walls is dropped, duplicates merged,
    and walls under the start or goal removed. The last two tokens are the start and the goal."""
    _check_size(size)
    t = np.asarray(tokens)
    if t.ndim != 1 or len(t) < 2 or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"tokens must be a 1-D integer sequence of length >= 2, got shape {t.shape}, {t.dtype}")
    if t.min() < 0 or t.max() > size * size:
        raise ValueError(f"tokens must lie in 0..{size * size} for a {size}x{size} grid, got {t.min()}..{t.max()}")
    if PAD in t[-2:]:
        raise ValueError("the last two tokens (start, goal) must be cell tokens, not PAD")
    start, goal = (divmod(int(x) - 1, size) for x in t[-2:])
    walls = {divmod(int(x) - 1, size) for x in t[:-2] if x != PAD} - {start, goal}
    return Task(size, tuple(walls), start, goal)


def optimal_return(task: Task, max_steps: int | None = None) -> float:
    """Return of an optimal agent, the antagonist's side of the regret (regret = this - the student's return).

    Reaching the goal after ``steps`` moves pays ``1 - 0.9 * steps / max_steps`` (MiniGrid's reward), never
    reaching it pays 0. The optimal agent takes ``shortest_path(task)`` moves, so unsolvable tasks (or optima
    beyond ``max_steps``) give 0. ``max_steps`` defaults to ``4 * size**2``; a valid task then scores in
    (0.775, 1), lower for longer optimal paths."""
    max_steps = 4 * task.size * task.size if max_steps is None else max_steps
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    steps = shortest_path(task)
    return 0.0 if steps is None or steps > max_steps else 1.0 - 0.9 * steps / max_steps


def render(task: Task) -> np.ndarray:
    """(size, size, 3) float RGB in [0, 1] for ``imshow``: free white, walls dark gray, start green, goal red."""
    return COLOURS[task.grid()]


_LAYOUTS = {  # '.' free, '#' wall, 'S' start, 'G' goal
    "two_rooms": ["S..#..G", "...#...", "...#...", ".......", "...#...", "...#...", "...#..."],
    "corridor": ["S......", ".......", "######.", ".......", ".######", ".......", "......G"],
    "spiral": ["S......", "######.", ".....#.", ".###.#.", ".#G..#.", ".#####.", "......."],
    "maze": ["S...#..", "###.#.#", "....#..", ".#####.", "...#...", "##.#.#.", "G....#."],
}


def hand_made_tasks() -> dict[str, Task]:
    """Four hand-designed 7x7 layouts for zero-shot tests, with their BFS optimum (walls):

    * ``two_rooms`` -- a wall down the middle with one door: 12 moves (6 walls)
    * ``corridor``  -- a zig-zag corridor between two walls: 24 moves (12 walls)
    * ``spiral``    -- round the outside and inwards to the centre: 30 moves (18 walls)
    * ``maze``      -- winding paths and a dead-end branch: 16 moves (18 walls)

    ``spiral`` and ``maze`` have more walls than ``random_task``'s default 12: held out of the training
    distribution, like the paper's test mazes (encode them with ``max_walls >= 18``)."""
    codes = {".": FREE, "#": WALL, "S": START, "G": GOAL}
    return {name: Task.from_grid([[codes[ch] for ch in row] for row in rows]) for name, rows in _LAYOUTS.items()}


def _inside(cell: Cell, size: int) -> bool:
    return 0 <= cell[0] < size and 0 <= cell[1] < size


def _check_size(size: int) -> None:
    if size < 3:
        raise ValueError(f"size must be at least 3, got {size}")


def _check_budget(size: int, max_walls: int) -> None:
    _check_size(size)
    if not 0 <= max_walls <= size * size - 2:
        raise ValueError(f"max_walls must lie in 0..{size * size - 2} on a {size}x{size} grid, got {max_walls}")
