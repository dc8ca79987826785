"""The Check section of every notebook: claims recorded with their value, threshold and direction.

Taught in every notebook's "Check" section (first in notebooks/00_start/01_shapes_world.ipynb).

A claim is "this measured value is at least (or at most) that threshold". A notebook collects its
claims, then verifies them all at once::

    check = Checks(cfg)
    check.at_least("probe gain over random init (pts)", gain, 10)
    check.at_most("pretext accuracy without an 'up' (%)", acc, 30)
    check.at_least("kNN gain (pts)", knn_gain, 5, asserted=cfg.scale != "smoke")  # shown at smoke, asserted at cpu
    check.show("context gain (nats)", context_gain)  # printed and recorded, never asserted
    failures = check.verify()
    assert not failures, failures

``verify()`` prints one table (claim, value, threshold, margin, holds) and returns a line naming *every*
failing claim, not only the first; the notebook's ``assert`` raises with it. The margin is how far the value is on the right
side of its threshold (negative: the claim fails). When ``SSL_TUTORIAL_CHECKS_JSON`` names a file, the
claims are also written there, which is how ``ssl-tutorial sweep`` collects them over many seeds.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

ENV = "SSL_TUTORIAL_CHECKS_JSON"
DIRECTIONS = (">=", ">", "<=", "<")
TOLERANCE = 1e-9  # relative: floating-point rounding never decides a claim


@dataclass
class Claim:
    name: str
    value: float
    threshold: float | None  # None: shown, never asserted
    direction: str  # one of DIRECTIONS, or "" for a claim that is only shown
    asserted: bool  # False: recorded and printed, but not asserted at this scale

    @property
    def margin(self) -> float | None:
        """How far the value is on the passing side of the threshold (< 0: it fails)."""
        if self.threshold is None:
            return None
        return self.value - self.threshold if self.direction.startswith(">") else self.threshold - self.value

    @property
    def holds(self) -> bool | None:
        if self.threshold is None:
            return None
        if math.isnan(self.value):
            return False
        m = self.margin
        slack = TOLERANCE * max(1.0, abs(self.threshold))  # 100 * (0.54 - 0.50) is 3.9999999999999996
        return m > slack if self.direction in (">", "<") else m >= -slack

    def record(self) -> dict:
        return {**asdict(self), "margin": self.margin, "holds": self.holds}


class Checks:
    """Collects a notebook's claims; ``verify()`` prints them and names every one that fails."""

    def __init__(self, cfg=None, notebook: str | None = None):
        self.scale = getattr(cfg, "scale", None)
        self.seed = getattr(cfg, "seed", None)
        self.notebook = notebook or os.environ.get("SSL_TUTORIAL_NOTEBOOK")
        self.claims: list[Claim] = []

    def claim(self, name: str, value, direction: str, threshold, asserted: bool = True) -> Claim:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        try:
            value, threshold = float(value), float(threshold)
        except (TypeError, ValueError):
            raise TypeError(f"claim {name!r}: value and threshold must be numbers, got {value!r} and {threshold!r}") \
                from None
        return self._add(Claim(name, value, threshold, direction, bool(asserted)))

    def at_least(self, name: str, value, threshold, asserted: bool = True) -> Claim:
        return self.claim(name, value, ">=", threshold, asserted)

    def above(self, name: str, value, threshold, asserted: bool = True) -> Claim:
        return self.claim(name, value, ">", threshold, asserted)

    def at_most(self, name: str, value, threshold, asserted: bool = True) -> Claim:
        return self.claim(name, value, "<=", threshold, asserted)

    def below(self, name: str, value, threshold, asserted: bool = True) -> Claim:
        return self.claim(name, value, "<", threshold, asserted)

    def show(self, name: str, value) -> Claim:
        """A measured number worth seeing (and sweeping) that the notebook does not assert."""
        return self._add(Claim(name, float(value), None, "", False))

    def _add(self, claim: Claim) -> Claim:
        if any(c.name == claim.name for c in self.claims):
            raise ValueError(f"claim {claim.name!r} is recorded twice; give each claim its own name")
        self.claims.append(claim)
        return claim

    def table(self):
        import pandas as pd

        rows = []
        for c in self.claims:
            if c.threshold is None:
                rule, status = "", "shown"
            else:
                rule = f"{c.direction} {c.threshold:g}"
                status = ("holds" if c.holds else "FAILS") if c.asserted else \
                    ("(holds)" if c.holds else "(fails)") + " not asserted here"
            rows.append({"claim": c.name, "value": round(c.value, 3), "threshold": rule,
                         "margin": None if c.margin is None else round(c.margin, 3), "holds": status})
        return pd.DataFrame(rows).set_index("claim")

    def write(self, path: str | Path | None = None) -> Path | None:
        """Append this cell's claims to ``path`` (default: ``$SSL_TUTORIAL_CHECKS_JSON``, if set)."""
        path = path or os.environ.get(ENV)
        if not path:
            return None
        path = Path(path)
        previous = []
        if path.exists():
            try:
                previous = json.loads(path.read_text())["claims"]
            except (ValueError, KeyError):
                previous = []
        record = {"notebook": self.notebook, "scale": self.scale, "seed": self.seed,
                  "claims": previous + [c.record() for c in self.claims]}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(path)
        return path

    def failures(self) -> list[Claim]:
        return [c for c in self.claims if c.asserted and not c.holds]

    def verify(self) -> str:
        """Print the table, record the claims if asked to, and return the failing claims, one line naming
        each ('' when all hold). The notebook asserts on it: ``failures = check.verify(); assert not failures, failures``."""
        if not self.claims:
            raise ValueError("no claims recorded; call at_least / at_most before verify()")
        print(self.table().to_string())
        self.write()
        failed = self.failures()
        if not failed:
            return ""
        listed = "; ".join(f"{c.name}: {c.value:.3g} is not {c.direction} {c.threshold:g}" for c in failed)
        return (f"{len(failed)} of {sum(c.asserted for c in self.claims)} claims fail "
                f"(scale {self.scale}, seed {self.seed}): {listed}")
