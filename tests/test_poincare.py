"""The Poincaré ball's operations against their formulas and their properties."""

import math

import pytest
import torch

from ssl_tutorial import poincare


def _points(n: int, d: int = 3, c: float = 1.0, seed: int = 0, max_radius: float = 0.9) -> torch.Tensor:
    """n random points inside the ball, at radii up to max_radius of its boundary."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(n, d, generator=g, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    radius = max_radius * torch.rand(n, 1, generator=g, dtype=torch.float64) / math.sqrt(c)
    return direction * radius


@pytest.mark.parametrize("c", [1.0, 0.3, 2.0])
def test_distance_is_a_metric(c):
    x, y, z = _points(200, c=c, seed=1), _points(200, c=c, seed=2), _points(200, c=c, seed=3)
    dxy, dyx = poincare.distance(x, y, c), poincare.distance(y, x, c)
    torch.testing.assert_close(dxy, dyx)  # symmetric, although Möbius addition is not commutative
    assert torch.all(dxy > 0)
    assert torch.allclose(poincare.distance(x, x, c), torch.zeros(200, dtype=torch.float64), atol=1e-6)
    assert torch.all(poincare.distance(x, z, c) <= dxy + poincare.distance(y, z, c) + 1e-9)  # triangle inequality


def test_distance_from_the_origin_and_the_euclidean_limit():
    x = _points(50, seed=4)
    origin = torch.zeros_like(x)
    torch.testing.assert_close(poincare.distance(origin, x), 2 * torch.atanh(x.norm(dim=-1)))
    small = 1e-4 * _points(50, seed=5)  # near the origin the metric is 2 x the Euclidean one
    other = 1e-4 * _points(50, seed=6)
    torch.testing.assert_close(poincare.distance(small, other), 2 * (small - other).norm(dim=-1), rtol=1e-3, atol=0)
    y = _points(50, seed=7)
    torch.testing.assert_close(poincare.distance(x, y, c=1e-8), 2 * (x - y).norm(dim=-1), rtol=1e-4, atol=0)


def test_distance_grows_without_bound_towards_the_boundary():
    u = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    radii = torch.tensor([0.5, 0.9, 0.99, 0.999], dtype=torch.float64)[:, None]
    d = poincare.distance(torch.zeros(4, 2, dtype=torch.float64), radii * u)
    assert torch.all(d[1:] > d[:-1]) and d[-1] > 7


def test_mobius_addition_identity_inverse_and_isometry():
    x, y, z = _points(100, seed=8), _points(100, seed=9), _points(100, seed=10)
    torch.testing.assert_close(poincare.mobius_add(torch.zeros_like(x), x), x)
    torch.testing.assert_close(poincare.mobius_add(x, torch.zeros_like(x)), x)
    torch.testing.assert_close(poincare.mobius_add(-x, x), torch.zeros_like(x), atol=1e-12, rtol=0)
    assert torch.all(poincare.mobius_add(x, y).norm(dim=-1) < 1)  # stays in the ball
    # left translation by z is an isometry: d(z + x, z + y) = d(x, y)
    torch.testing.assert_close(poincare.distance(poincare.mobius_add(z, x), poincare.mobius_add(z, y)),
                               poincare.distance(x, y))
    # with orthogonal x and y the formula reduces to ((1 + |y|^2) x + (1 - |x|^2) y) / (1 + |x|^2 |y|^2)
    a, b = torch.tensor([0.3, 0.0], dtype=torch.float64), torch.tensor([0.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(poincare.mobius_add(a, b), ((1 + 0.25) * a + (1 - 0.09) * b) / (1 + 0.09 * 0.25))


@pytest.mark.parametrize("c", [1.0, 0.5, 3.0])
def test_exp_and_log_maps_are_inverses(c):
    g = torch.Generator().manual_seed(11)
    v = 0.7 * torch.randn(100, 4, generator=g, dtype=torch.float64) / math.sqrt(c)  # sqrt(c) |v| < 4: no clipping
    y = poincare.expmap0(v, c)
    assert torch.all(c * (y * y).sum(-1) < 1)
    torch.testing.assert_close(poincare.logmap0(y, c), v)
    x = _points(100, d=4, c=c, seed=12)
    torch.testing.assert_close(poincare.expmap0(poincare.logmap0(x, c), c), x)
    # exp_0 keeps directions and maps length r to tanh(sqrt(c) r) / sqrt(c)
    r = v.norm(dim=-1)
    torch.testing.assert_close(y.norm(dim=-1), torch.tanh(math.sqrt(c) * r) / math.sqrt(c))
    # and the distance of exp_0(v) from the origin is 2 |v|, the metric's factor 2 at the origin
    torch.testing.assert_close(poincare.distance(torch.zeros_like(y), y, c), 2 * r)


def test_maps_are_finite_at_the_origin_and_far_out():
    zero = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.all(poincare.expmap0(zero) == 0) and torch.all(poincare.logmap0(zero.detach()) == 0)
    poincare.expmap0(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()
    huge = torch.tensor([[1e3, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    y = poincare.expmap0(huge)  # tanh saturates: projected just inside the boundary, not onto it
    assert y.norm() < 1
    d = poincare.distance(torch.zeros_like(y), y)
    d.backward()
    assert torch.isfinite(d) and torch.isfinite(huge.grad).all()


def test_project_only_moves_points_outside():
    inside = _points(20, seed=13)
    torch.testing.assert_close(poincare.project(inside), inside)
    outside = torch.tensor([[2.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    pulled = poincare.project(outside)
    assert torch.all(pulled.norm(dim=-1) < 1)
    torch.testing.assert_close(pulled / pulled.norm(dim=-1, keepdim=True), outside / outside.norm(dim=-1, keepdim=True))


def test_pairwise_distance_matches_distance():
    x, y = _points(5, seed=14), _points(7, seed=15)
    table = poincare.pairwise_distance(x, y)
    assert table.shape == (5, 7)
    torch.testing.assert_close(table[2, 3], poincare.distance(x[2], y[3]))


def test_tangent_mean_is_exact_on_a_geodesic_through_the_origin():
    u = torch.tensor([0.6, 0.8], dtype=torch.float64)
    points = torch.tensor([-0.5, 0.2, 0.9], dtype=torch.float64)[:, None] * u
    centre = poincare.tangent_mean(points)
    # on the geodesic, the Fréchet mean is the point whose signed distance from 0 is the mean signed distance
    signed = 2 * torch.atanh(torch.tensor([-0.5, 0.2, 0.9], dtype=torch.float64))
    torch.testing.assert_close(centre, torch.tanh(signed.mean() / 2) * u)
    # and it minimises the sum of squared distances there
    loss = lambda p: (poincare.distance(points, p.expand_as(points)) ** 2).sum()  # noqa: E731
    for step in (1e-3, -1e-3):
        assert loss(centre) < loss(poincare.project(centre + step * u))


def test_a_superclass_near_the_origin_is_close_to_all_its_classes():
    """Why hierarchies fit: a point near the origin is closer to far-apart children than they are to each other."""
    children = torch.tensor([[0.9, 0.0], [0.0, 0.9], [-0.9, 0.0]], dtype=torch.float64)
    parent = poincare.tangent_mean(children)
    to_parent = poincare.distance(children, parent.expand_as(children))
    between = poincare.pairwise_distance(children, children)
    assert parent.norm() < children.norm(dim=-1).min()
    assert to_parent.max() < between[between > 0].min()


def test_non_positive_curvature_is_an_error():
    x = _points(2)
    for fn in (lambda: poincare.distance(x, x, c=0), lambda: poincare.expmap0(x, c=-1.0),
               lambda: poincare.mobius_add(x, x, c=0.0), lambda: poincare.project(x, c=0)):
        with pytest.raises(ValueError, match="curvature"):
            fn()


def test_einstein_midpoint_of_one_point_is_that_point():
    x = _points(6, seed=16, max_radius=0.99)
    for i in range(len(x)):
        torch.testing.assert_close(poincare.einstein_midpoint(x[i:i + 1]), x[i])


def test_einstein_midpoint_of_a_point_and_its_negation_is_the_origin():
    x = _points(5, seed=17)
    for i in range(len(x)):
        mid = poincare.einstein_midpoint(torch.stack([x[i], -x[i]]))
        torch.testing.assert_close(mid, torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("c", [1.0, 0.4])
def test_einstein_midpoint_on_a_geodesic_through_the_origin_stays_on_it(c):
    u = torch.tensor([0.6, 0.0, -0.8], dtype=torch.float64)
    t = torch.tensor([-0.7, 0.1, 0.5, 0.95], dtype=torch.float64) / math.sqrt(c)
    mid = poincare.einstein_midpoint(t[:, None] * u, c)
    along = mid @ u
    torch.testing.assert_close(mid, along * u, atol=1e-12, rtol=0)  # no component off the line
    assert 0 < along < t.max()  # pulled towards the far point at 0.95, which weighs most


@pytest.mark.parametrize("c", [1.0, 0.3, 2.5])
def test_einstein_midpoint_of_two_points_is_their_geodesic_midpoint(c):
    """For two points the Einstein midpoint is the hyperbolic midpoint: half the distance from each."""
    x, y = _points(20, c=c, seed=18), _points(20, c=c, seed=19)
    mid = poincare.einstein_midpoint(torch.stack([x, y]), c)
    half = poincare.distance(x, y, c) / 2
    torch.testing.assert_close(poincare.distance(x, mid, c), half)
    torch.testing.assert_close(poincare.distance(mid, y, c), half)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_einstein_midpoint_is_inside_the_ball(dtype):
    for c in (1.0, 0.1, 4.0):
        g = torch.Generator().manual_seed(20)
        # all near the boundary and nearly in one direction: the midpoint is near the boundary too
        direction = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64) + 1e-3 * torch.randn(8, 3, generator=g,
                                                                                             dtype=torch.float64)
        points = poincare.project(direction / direction.norm(dim=-1, keepdim=True) / math.sqrt(c), c).to(dtype)
        for batch in (points, _points(50, c=c, seed=21, max_radius=0.9999).to(dtype)):
            mid = poincare.einstein_midpoint(batch, c)
            assert mid.dtype == dtype and torch.isfinite(mid).all()
            assert c * (mid.double() ** 2).sum() < 1


def test_einstein_midpoint_is_invariant_to_permuting_the_points():
    x = _points(30, seed=22, max_radius=0.99)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(23))
    torch.testing.assert_close(poincare.einstein_midpoint(x[perm]), poincare.einstein_midpoint(x))


def test_einstein_midpoint_near_the_origin_is_the_euclidean_mean():
    x = 1e-4 * _points(40, seed=24)
    torch.testing.assert_close(poincare.einstein_midpoint(x), x.mean(0), rtol=1e-6, atol=0)
    far = _points(40, seed=24)  # away from the origin the two differ
    assert (poincare.einstein_midpoint(far) - far.mean(0)).norm() > 1e-3


def test_einstein_midpoint_scales_with_the_curvature():
    """The ball of curvature -c is the unit ball scaled by 1 / sqrt(c), and so are its midpoints."""
    q = _points(10, seed=25, max_radius=0.99)
    for c in (0.2, 3.0):
        torch.testing.assert_close(poincare.einstein_midpoint(q / math.sqrt(c), c),
                                   poincare.einstein_midpoint(q) / math.sqrt(c))


def test_einstein_midpoint_rejects_non_positive_curvature():
    x = _points(3)
    for c in (0.0, -1.0):
        with pytest.raises(ValueError, match="curvature"):
            poincare.einstein_midpoint(x, c)


def test_einstein_midpoint_dim_reduces_a_batch():
    batch = _points(4 * 5, seed=26, max_radius=0.99).reshape(4, 5, 3)  # (k, n, d): k groups of n points
    expected = torch.stack([poincare.einstein_midpoint(group) for group in batch])
    for dim in (1, -2):
        mid = poincare.einstein_midpoint(batch, dim=dim)
        assert mid.shape == (4, 3)
        torch.testing.assert_close(mid, expected)
    across = poincare.einstein_midpoint(batch, dim=0)  # (n, d): the midpoint of the k points at each position
    assert across.shape == (5, 3)
    torch.testing.assert_close(across[2], poincare.einstein_midpoint(batch[:, 2]))
