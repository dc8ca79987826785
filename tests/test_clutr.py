import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_tutorial.data.gridworld import (
    Task,
    bfs_distances,
    hand_made_tasks,
    is_valid,
    optimal_return,
    param_sizes,
    params_task,
    random_params,
    random_tasks,
    segment_tasks,
)
from ssl_tutorial.methods.a2c import ActorCritic, GridEnv, a2c_loss, beeline_policy, rollout, task_planes, train_student
from ssl_tutorial.methods.clutr import (
    TaskVAE,
    cem_search,
    interpolate,
    optimal_returns,
    propose_tasks,
    reconstruction,
    regret,
    task_dataset,
)

UP, DOWN, LEFT, RIGHT = range(4)
ENCLOSED = Task(7, ((2, 3), (4, 3), (3, 2), (3, 4)), (0, 0), (3, 3))


def small_vae(**kwargs):
    return TaskVAE(**{"size": 7, "segments": 3, "latent_dim": 4, "hidden": 16, **kwargs})


def always(action, strength=50.0):
    """A policy whose logits (almost) surely pick ``action``."""
    def policy(obs):
        logits = torch.full((len(obs), 4), -strength)
        logits[:, action] = strength
        return logits
    return policy


def bfs_policy(obs):
    """A perfect student: step to a neighbour one move closer to the goal (BFS distances from the goal)."""
    n, _, s, _ = obs.shape
    logits = torch.full((n, 4), -100.0)
    for i in range(n):
        walls = tuple(map(tuple, torch.nonzero(obs[i, 0]).tolist()))
        pos = divmod(int(obs[i, 1].flatten().argmax()), s)
        goal = divmod(int(obs[i, 2].flatten().argmax()), s)
        dist = bfs_distances(Task(s, walls, goal, goal))
        for a, (dr, dc) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
            r, c = pos[0] + dr, pos[1] + dc
            if 0 <= r < s and 0 <= c < s and dist[r, c] == dist[pos] - 1 >= 0:
                logits[i, a] = 100.0
                break
    return logits


# ----------------------------------------------------------------------------- tasks as data
def test_task_planes():
    tasks = [Task(7, ((1, 2), (3, 3)), (0, 0), (6, 6)), *segment_tasks(5, seed=0)]
    planes = task_planes(tasks)
    assert planes.shape == (6, 3, 7, 7) and planes.dtype == torch.float32
    assert (planes[:, 1].sum((1, 2)) == 1).all() and (planes[:, 2].sum((1, 2)) == 1).all()
    assert planes[0, 1, 0, 0] == 1 and planes[0, 2, 6, 6] == 1
    for t, p in zip(tasks, planes):
        assert (p[0].numpy() == (t.grid() == 1)).all()
        assert set(map(tuple, torch.nonzero(p[0]).tolist())) == set(t.walls)
    assert task_planes([Task(5, (), (0, 0), (4, 4))]).shape == (1, 3, 5, 5)


def test_task_planes_bad_inputs():
    with pytest.raises(ValueError, match="no tasks"):
        task_planes([])
    with pytest.raises(ValueError, match="same grid size"):
        task_planes([Task(7, (), (0, 0), (1, 1)), Task(5, (), (0, 0), (1, 1))])


def test_task_dataset():
    params = random_params(6, segments=3, seed=1)
    data = task_dataset(params, size=7, segments=3)
    assert len(data) == 6 and data.class_names == ["task"]
    assert data.labels.dtype == torch.int64 and (data.labels.numpy() == params).all()
    expected = task_planes([params_task(p, 7, 3) for p in params])
    assert torch.equal(data.images, expected)


# ----------------------------------------------------------------------------- the task VAE
def test_vae_encode_shapes_and_bad_params():
    vae = small_vae()
    params = torch.from_numpy(random_params(5, segments=3, seed=0))
    mu, logvar = vae.encode(params)
    assert mu.shape == logvar.shape == (5, 4)
    assert vae.encode_params(params.numpy()).shape == (5, 4)
    with pytest.raises(ValueError, match=r"task parameters must have shape \(N, 19\), got \(5, 18\)"):
        vae.encode(params[:, :-1])
    with pytest.raises(ValueError, match=r"shape \(N, 19\)"):
        vae.encode(params[0])
    with pytest.raises(ValueError, match="latent_dim and hidden must be positive"):
        TaskVAE(latent_dim=0)


def test_vae_one_hot_inverts():
    vae = small_vae()
    sizes = param_sizes(7, 3)
    params = torch.from_numpy(random_params(20, segments=3, seed=2))
    x = vae.one_hot(params)
    assert x.shape == (20, sum(sizes)) and set(x.unique().tolist()) == {0.0, 1.0}
    assert (x.sum(1) == len(sizes)).all()
    back = torch.stack([block.argmax(1) for block in x.split(sizes, 1)], 1)
    assert torch.equal(back, params)


def test_vae_logits_padded_with_minus_inf():
    vae = small_vae()
    sizes = param_sizes(7, 3)
    logits = vae.logits(torch.randn(3, 4))
    assert logits.shape == (3, len(sizes), max(sizes))
    for j, k in enumerate(sizes):
        assert torch.isfinite(logits[:, j, :k]).all()
        assert torch.isneginf(logits[:, j, k:]).all()


def test_vae_loss_is_finite_scalar():
    vae = small_vae()
    params = torch.from_numpy(random_params(8, segments=3, seed=0))
    loss, logs = vae.loss((None, params))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(logs) == {"kl", "recon"} and logs["kl"] >= 0 and logs["recon"] > 0
    loss.backward()
    assert all(p.grad is not None for p in vae.parameters())


def test_vae_loss_ignores_fields_of_off_segments(monkeypatch):
    vae = small_vae()
    # fix the posterior at mu = 0, sigma = 1 and the noise at 0, so z = 0 whatever the parameters
    monkeypatch.setattr(vae, "encode", lambda p: (torch.zeros(len(p), 4), torch.zeros(len(p), 4)))
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)
    base = torch.tensor([[1, 0, 2, 1, 0, 0, 0, 3, 3, 1, 1, 1, 5, 5, 3, 0, 0, 6, 6]])

    def recon(params):
        loss, logs = vae.loss((None, params))
        assert logs["kl"] == 0 and torch.isclose(loss, logs["recon"])
        return logs["recon"]

    # by hand: -log p of every field, the vertical/row/col/length fields of the second segment (off) left out
    logp = F.log_softmax(vae.logits(torch.zeros(1, 4)), 2)[0]
    keep = [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    assert torch.isclose(recon(base), -logp[keep, base[0, keep]].sum())
    for field, value in ((6, 1), (7, 6), (8, 0), (9, 3)):  # the second segment is off: its fields do not count
        changed = base.clone()
        changed[0, field] = value
        assert torch.equal(recon(changed), recon(base))
    for field, value in ((5, 1), (12, 0), (2, 5), (0, 0)):  # on flags, an on segment's fields and the first segment
        changed = base.clone()
        changed[0, field] = value
        assert not torch.isclose(recon(changed), recon(base))


def test_vae_decodes_in_range():
    vae = small_vae()
    sizes = torch.tensor(param_sizes(7, 3))
    params = vae.decode_params(torch.randn(50, 4) * 3)
    assert params.shape == (50, 19) and params.dtype == torch.int64
    assert (params >= 0).all() and (params < sizes).all()
    tasks = vae.decode_tasks(torch.randn(6, 4))
    assert len(tasks) == 6 and all(isinstance(t, Task) and t.size == 7 for t in tasks)
    assert vae.decode_tasks(torch.zeros(2, 4))[0] == params_task(vae.decode_params(torch.zeros(1, 4))[0].numpy(), 7, 3)


def test_vae_overfits_a_few_tasks():
    params = torch.from_numpy(random_params(64, segments=3, seed=0))
    vae = TaskVAE(size=7, segments=3, latent_dim=8, hidden=64, beta=1e-3)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-2)
    for _ in range(100):
        loss, _ = vae.loss((None, params))
        opt.zero_grad()
        loss.backward()
        opt.step()
    scores = reconstruction(vae, params.numpy())
    assert scores["exact"] >= 0.9 and scores["cell_accuracy"] > scores["empty_grid"] and scores["valid"] >= 0.9


def test_interpolate():
    vae = small_vae()
    a, b = random_params(2, segments=3, seed=3)
    tasks = interpolate(vae, a, b, n=5)
    assert len(tasks) == 5 and all(isinstance(t, Task) for t in tasks)
    ends = vae.decode_tasks(vae.encode_params(np.stack([a, b])))
    assert tasks[0] == ends[0] and tasks[-1] == ends[1]
    assert len(interpolate(vae, a, b, n=2)) == 2
    with pytest.raises(ValueError, match="at least 2"):
        interpolate(vae, a, b, n=1)


# ----------------------------------------------------------------------------- the environment
def test_grid_env_walls_border_and_goal():
    # both tasks have a wall right of the start; the goal of task 1 is one step down
    tasks = [Task(5, ((0, 1),), (0, 0), (2, 2)), Task(5, ((0, 1),), (0, 0), (1, 0))]
    env = GridEnv(tasks, max_steps=10)
    obs = env.reset()
    assert obs.shape == (2, 3, 5, 5) and obs[0, 0, 0, 1] == 1 and obs[0, 1, 0, 0] == 1 and obs[0, 2, 2, 2] == 1
    for action in (RIGHT, UP, LEFT):  # into the wall, then the border twice: nobody moves
        obs, reward, done = env.step(torch.tensor([action, action]))
        assert env.pos.tolist() == [[0, 0], [0, 0]] and (reward == 0).all() and not done.any()
    obs, reward, done = env.step(torch.tensor([DOWN, DOWN]))  # task 1 reaches its goal at t = 4
    assert env.pos.tolist() == [[1, 0], [1, 0]] and done.tolist() == [False, True]
    assert reward[0] == 0 and reward[1] == pytest.approx(1 - 0.9 * 4 / 10)
    assert obs[0, 1, 1, 0] == 1 and obs[0, 1].sum() == 1
    for action in (DOWN, RIGHT, RIGHT):  # task 0 reaches its goal at t = 7; the finished agent stays put
        obs, reward, done = env.step(torch.tensor([action, action]))
        assert env.pos[1].tolist() == [1, 0] and reward[1] == 0
    assert env.pos[0].tolist() == [2, 2] and reward[0] == pytest.approx(1 - 0.9 * 7 / 10) and done.all()
    env.step(torch.tensor([UP, UP]))
    assert env.pos.tolist() == [[2, 2], [1, 0]]
    assert env.reset()[:, 1].flatten(1).argmax(1).tolist() == [0, 0] and not env.done.any() and env.t == 0


def test_grid_env_done_at_max_steps():
    env = GridEnv([Task(5, (), (0, 0), (4, 4))], max_steps=3)
    for t in range(3):
        _, reward, done = env.step(torch.tensor([UP]))
        assert reward.item() == 0 and done.item() == (t == 2)


# ----------------------------------------------------------------------------- policies and rollouts
def test_beeline_prefers_closer_moves_on_an_empty_grid():
    rng = np.random.default_rng(0)
    tasks = []
    while len(tasks) < 40:
        start, goal = (tuple(int(x) for x in rng.integers(0, 7, 2)) for _ in range(2))
        if start != goal:
            tasks.append(Task(7, (), start, goal))
    logits = beeline_policy(task_planes(tasks))
    assert logits.shape == (40, 4)
    for t, best in zip(tasks, logits.argmax(1).tolist()):
        dr, dc = ((-1, 0), (1, 0), (0, -1), (0, 1))[best]
        nxt = (t.start[0] + dr, t.start[1] + dc)
        assert abs(nxt[0] - t.goal[0]) + abs(nxt[1] - t.goal[1]) < abs(t.start[0] - t.goal[0]) + abs(
            t.start[1] - t.goal[1])
    manhattan = np.array([abs(t.start[0] - t.goal[0]) + abs(t.start[1] - t.goal[1]) for t in tasks])
    greedy = rollout(beeline_policy, tasks, max_steps=64, greedy=True)
    assert greedy["success"].all() and (greedy["steps"] == manhattan).all()
    sampled = rollout(beeline_policy, tasks, max_steps=64, generator=torch.Generator().manual_seed(1))
    # sampled rollouts favour closer moves but may take a detour: never shorter, mostly exact
    assert sampled["success"].all() and (sampled["steps"] >= manhattan).all()
    assert (sampled["steps"] == manhattan).mean() > 0.7


def test_beeline_avoids_walls_and_border():
    # at (0,0) with the goal at (0,2) behind a wall at (0,1): up and left are off the grid, right is a wall
    logits = beeline_policy(task_planes([Task(7, ((0, 1),), (0, 0), (0, 2))]))[0]
    assert logits.argmax() == DOWN and (logits[[UP, LEFT, RIGHT]] < logits[DOWN]).all()


def test_rollout_by_hand():
    tasks = [Task(5, (), (0, 0), (0, 3)),  # straight right: 3 moves
             Task(5, (), (0, 0), (1, 0)),  # goal below: never reached by going right
             Task(5, ((0, 2),), (0, 0), (0, 3))]  # a wall in the way
    out = rollout(always(RIGHT), tasks, max_steps=8)
    assert out["success"].tolist() == [True, False, False]
    assert out["steps"].tolist() == [3, 8, 8]
    assert out["return"] == pytest.approx([1 - 0.9 * 3 / 8, 0, 0])
    down = rollout(always(DOWN), tasks, max_steps=8)
    assert down["success"].tolist() == [False, True, False] and down["steps"][1] == 1


def test_rollout_accepts_actor_critic_and_is_reproducible():
    tasks = segment_tasks(6, seed=0)
    policy = ActorCritic(size=7, hidden=8)
    a = rollout(policy, tasks, max_steps=16, greedy=True)
    b = rollout(policy, tasks, max_steps=16, greedy=True)
    assert all((a[k] == b[k]).all() for k in a)
    assert a["success"].dtype == bool and a["steps"].shape == a["return"].shape == (6,)
    c, d = (rollout(policy, tasks, max_steps=16, generator=torch.Generator().manual_seed(5)) for _ in range(2))
    assert all((c[k] == d[k]).all() for k in c)


# ----------------------------------------------------------------------------- regret
def test_optimal_returns_match_optimal_return():
    tasks = [*segment_tasks(40, seed=0), *random_tasks(20, seed=0), *hand_made_tasks().values()]
    for max_steps in (64, 20):
        expected = [optimal_return(t, max_steps) for t in tasks]
        assert optimal_returns(tasks, max_steps) == pytest.approx(expected)
    assert (optimal_returns(tasks, 20) == 0).any()  # some optima lie beyond 20 steps
    bad = [ENCLOSED, Task(7, (), (3, 3), (3, 3)), Task(7, ((6, 6),), (0, 0), (6, 6))]
    assert optimal_returns(bad).tolist() == [0.0, 0.0, 0.0]


def test_regret_of_a_perfect_student_is_zero():
    tasks = [*segment_tasks(6, seed=4), hand_made_tasks()["maze"]]
    assert regret(bfs_policy, tasks, max_steps=64) == pytest.approx(np.zeros(7), abs=1e-6)


def test_regret_of_a_stuck_student_is_the_optimum():
    tasks = [Task(7, (), (0, 3), (5, 5)), Task(7, ((1, 1), (1, 2)), (0, 0), (6, 0)),
             *[t for t in segment_tasks(60, seed=0) if t.start[0] == 0]]
    assert len(tasks) > 3
    r = regret(always(UP), tasks, max_steps=64, episodes=2)
    assert r == pytest.approx(optimal_returns(tasks, 64)) and (r > 0).all()


def test_regret_of_unsolvable_tasks_is_not_positive():
    tasks = [ENCLOSED, Task(7, (), (0, 3), (0, 3)), Task(7, ((6, 6),), (0, 0), (6, 6))]
    for policy in (always(UP), beeline_policy, bfs_policy):
        assert (regret(policy, tasks, max_steps=16) <= 0).all()


# ----------------------------------------------------------------------------- the teacher
def test_cem_search_moves_towards_the_optimum():
    c = torch.tensor([2.0, -1.0, 1.5])

    def score(z):
        return -((z - c) ** 2).sum(1).numpy()

    history = cem_search(score, latent_dim=3, iterations=6, population=64, elite=0.25, seed=0)
    assert len(history) == 6 and set(history[0]) == {"z", "score", "mu", "sigma"}
    assert history[0]["z"].shape == (64, 3) and history[0]["score"].shape == (64,)
    assert torch.equal(history[0]["mu"], torch.zeros(3)) and torch.equal(history[0]["sigma"], torch.ones(3))
    assert (history[-1]["mu"] - c).norm() < 0.2 * c.norm()
    assert history[-1]["score"].mean() > history[0]["score"].mean()
    again = cem_search(score, latent_dim=3, iterations=6, population=64, elite=0.25, seed=0)
    assert all(torch.equal(a["z"], b["z"]) for a, b in zip(history, again))
    other = cem_search(score, latent_dim=3, iterations=1, population=64, elite=0.25, seed=1)
    assert not torch.equal(other[0]["z"], history[0]["z"])


def test_cem_search_elite_share_checked():
    for elite in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"elite must be a share in \(0, 1\]"):
            cem_search(lambda z: np.zeros(len(z)), latent_dim=2, elite=elite)
    assert len(cem_search(lambda z: np.zeros(len(z)), latent_dim=2, iterations=2, population=8, elite=1)) == 2


def test_propose_tasks():
    vae = small_vae()
    tasks, r = propose_tasks(vae, beeline_policy, n=5, candidates=64, max_steps=32, seed=0)
    assert len(tasks) == len(r) == 5 and all(is_valid(t) for t in tasks)
    assert (np.diff(r) <= 0).all() and (r <= optimal_returns(tasks, 32) + 1e-9).all()
    again, r_again = propose_tasks(vae, beeline_policy, n=5, candidates=64, max_steps=32, seed=0)
    assert again == tasks and (r_again == r).all()
    with pytest.raises(RuntimeError, match="of 8 decoded tasks are valid"):
        propose_tasks(vae, beeline_policy, n=9, candidates=8, max_steps=32)


# ----------------------------------------------------------------------------- the student
def test_actor_critic_shapes():
    logits, value = ActorCritic(size=7, hidden=8)(torch.zeros(5, 3, 7, 7))
    assert logits.shape == (5, 4) and value.shape == (5,)
    assert ActorCritic(size=5, hidden=8)(torch.zeros(2, 3, 5, 5))[0].shape == (2, 4)


def test_a2c_loss_backpropagates():
    policy = ActorCritic(size=7, hidden=16)
    loss, success = a2c_loss(policy, segment_tasks(4, seed=0), max_steps=16,
                             generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss) and 0 <= success <= 1
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in policy.parameters())


def test_train_student_reproducible():
    def curriculum(update, policy):
        return segment_tasks(4, seed=update)

    runs = []
    for _ in range(2):
        policy = ActorCritic(size=7, hidden=16)
        curve = train_student(policy, curriculum, updates=3, max_steps=16, seed=0, progress=False)
        runs.append((curve, policy.state_dict()))
    (curve, state), (curve2, state2) = runs
    assert len(curve) == 3 and all(0 <= s <= 1 for s in curve) and curve == curve2
    assert all(torch.equal(state[k], state2[k]) for k in state)
    other = ActorCritic(size=7, hidden=16)
    train_student(other, curriculum, updates=3, max_steps=16, seed=1, progress=False)
    assert not all(torch.equal(state[k], other.state_dict()[k]) for k in state)


def test_vae_rejects_out_of_range_params():
    vae = small_vae()
    p = torch.zeros(1, len(param_sizes(7, 3)), dtype=torch.long)
    p[0, 2] = 7  # a row on a 7 x 7 grid
    with pytest.raises(ValueError, match="out of range"):
        vae.encode(p)
    with pytest.raises(ValueError, match="out of range"):
        vae.encode(-torch.ones_like(p))


def test_a_task_that_starts_on_its_goal_earns_nothing():
    same = Task(7, (), (0, 3), (0, 3))
    assert rollout(always(0), [same])["return"][0] == 0  # bumping the border does not "arrive"
    assert regret(always(0), [same])[0] == 0
    assert regret(always(0), []).shape == (0,)
    with pytest.raises(ValueError, match="starts on its goal"):
        a2c_loss(ActorCritic(), [same])
