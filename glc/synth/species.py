"""The species of the synthetic world: niches in environment space, habitat preferences, range limits.

The presence probability of species ``j`` in survey ``i`` is ``sigmoid(z_ij)`` with

    z_ij = a_j + s * (niche_ij + habitat_ij + footprint_ij + range_ij) + area_slope * log(area_i / 100 m2) + u_i

* ``niche``: a Gaussian response ``-1/2 sum_k ((x_ik - mu_jk) / sigma_jk)^2`` over standardized site variables
  (:data:`NICHE_VARIABLES`, the values the environmental CSVs and rasters hold); some variables are irrelevant to
  some species (``1/sigma^2 = 0``);
* ``habitat``: weights on the plot's habitat fractions (visible in the patches and Landsat series);
* ``footprint``: a linear response to the human footprint index (synanthropic vs. sensitive species);
* ``range``: a soft spatial range limit, ``-1.5 softplus((d - R_j) / w_j)`` with ``d`` the distance to the range
  centre (km);
* ``u_i``: a survey effect (sampling effort) that no model can see;
* ``a_j``: calibrated on pilot sites so that the species' mean presence probability equals its target prevalence
  (a log-normal long tail scaled so that the expected richness matches ``ScaleParams.richness``).

Common species get broad niches and large ranges, rare ones narrow niches and small ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glc.data.layout import NUM_CLASSES
from glc.synth.modalities import N_HAB

#: Site variables of the niche model, in order (computed from raster values by :func:`niche_variables`).
NICHE_VARIABLES: tuple[str, ...] = (
    "temperature",
    "log_precipitation",
    "temperature_seasonality",
    "log_driest_quarter_precipitation",
    "elevation",
    "soil_ph",
    "soil_sand",
    "log_soil_organic_carbon",
)
N_NICHE = len(NICHE_VARIABLES)

_INTERCEPT_BOUNDS = (-30.0, 12.0)


def niche_variables(env: dict[str, np.ndarray]) -> np.ndarray:
    """Raw niche variables ``(N, 8)`` from raster samples (keys ``bio1``, ``bio4``, ``bio12``, ``bio17``,
    ``elevation``, ``phh2o``, ``sand``, ``soc``)."""
    return np.column_stack(
        [
            env["bio1"] / 10.0 - 273.15,
            np.log1p(env["bio12"] / 10.0),
            env["bio4"] / 1000.0,
            np.log1p(env["bio17"] / 10.0),
            env["elevation"] / 1000.0,
            env["phh2o"] / 10.0,
            env["sand"] / 1000.0,
            np.log1p(env["soc"]),
        ]
    ).astype(np.float64)


@dataclass
class SiteFeatures:
    """What the species model needs about a set of surveys (rows aligned).

    Attributes:
        x: standardized niche variables ``(N, 8)``.
        hab: habitat fractions ``(N, 8)``.
        hfp: standardized human footprint ``(N,)``.
        xy: projected coordinates in km ``(N, 2)``.
        log_area: ``log(area / 100 m2)`` (0 where the plot has no area, e.g. PO).
        effect: survey random effect ``(N,)``.
    """

    x: np.ndarray
    hab: np.ndarray
    hfp: np.ndarray
    xy: np.ndarray
    log_area: np.ndarray
    effect: np.ndarray

    def take(self, idx: np.ndarray | slice) -> SiteFeatures:
        """Rows ``idx`` of every array."""
        return SiteFeatures(
            self.x[idx], self.hab[idx], self.hfp[idx], self.xy[idx], self.log_area[idx], self.effect[idx]
        )


@dataclass
class SpeciesPool:
    """Traits of every species (arrays of length ``S`` unless stated).

    Attributes:
        ids: GLC species ids (sorted, distinct, within 0..11254).
        mu: niche optima ``(S, 8)`` in standardized units.
        inv_var: ``1 / sigma^2`` ``(S, 8)``; 0 where a variable does not matter to the species.
        hab: habitat weights ``(S, 8)``.
        hf_slope: response to the standardized footprint.
        centre: range centres ``(S, 2)`` in km.
        radius, edge: range radius and edge width (km).
        intercept: calibrated ``a_j``.
        target_prevalence: the prevalence ``a_j`` was calibrated to.
        detectability: relative chance of being reported in presence-only data.
        strength, area_slope: the global ``s`` and area slope.
        x_mean, x_sd: standardization of the niche variables; hf_mean, hf_sd: of the footprint.
    """

    ids: np.ndarray
    mu: np.ndarray
    inv_var: np.ndarray
    hab: np.ndarray
    hf_slope: np.ndarray
    centre: np.ndarray
    radius: np.ndarray
    edge: np.ndarray
    intercept: np.ndarray
    target_prevalence: np.ndarray
    detectability: np.ndarray
    strength: float
    area_slope: float
    x_mean: np.ndarray
    x_sd: np.ndarray
    hf_mean: float
    hf_sd: float

    @property
    def n(self) -> int:
        return len(self.ids)

    def standardize(self, raw_x: np.ndarray, hfp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardize raw niche variables and footprint with the pool's constants."""
        return (raw_x - self.x_mean) / self.x_sd, (np.asarray(hfp, dtype=np.float64) - self.hf_mean) / self.hf_sd

    def suitability(self, f: SiteFeatures) -> np.ndarray:
        """``s * (niche + habitat + footprint + range)``, shape ``(N, S)`` float64."""
        x = f.x
        quad = -0.5 * (
            (x * x) @ self.inv_var.T
            - 2.0 * x @ (self.mu * self.inv_var).T
            + (self.mu * self.mu * self.inv_var).sum(axis=1)
        )
        g = quad + f.hab @ self.hab.T + f.hfp[:, None] * self.hf_slope
        d2 = (f.xy * f.xy).sum(axis=1)[:, None] - 2.0 * f.xy @ self.centre.T + (self.centre**2).sum(axis=1)
        d = np.sqrt(np.maximum(d2, 0.0))
        g += -1.5 * np.logaddexp(0.0, (d - self.radius) / self.edge)
        return self.strength * g

    def logits(self, f: SiteFeatures) -> np.ndarray:
        """Full logits ``z`` ``(N, S)`` (float64)."""
        return self.intercept + self.suitability(f) + self.area_slope * f.log_area[:, None] + f.effect[:, None]

    def probabilities(self, f: SiteFeatures) -> np.ndarray:
        """Presence probabilities ``(N, S)`` (float64)."""
        return _sigmoid(self.logits(f))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def target_prevalences(rng: np.random.Generator, n: int, richness: float, sigma: float, cap: float) -> np.ndarray:
    """Long-tailed species prevalences: log-normal, capped at ``cap``, summing to ``richness``."""
    if richness >= cap * n:
        raise ValueError(
            f"richness {richness} cannot be reached by {n} species capped at prevalence {cap}; "
            "raise n_species or max_prevalence"
        )
    p = rng.lognormal(0.0, sigma, size=n)
    p *= richness / p.sum()
    for _ in range(100):
        p = np.minimum(p, cap)
        free = p < cap
        deficit = richness - p.sum()
        if abs(deficit) < 1e-9 * richness:
            break
        p[free] *= 1.0 + deficit / p[free].sum()
    return np.minimum(p, cap)


def make_species_pool(
    rng: np.random.Generator,
    n_species: int,
    pilot_raw_x: np.ndarray,
    pilot_hfp: np.ndarray,
    pilot_xy: np.ndarray,
    richness: float,
    sigma: float,
    cap: float,
    strength: float,
    area_slope: float,
) -> SpeciesPool:
    """Draw species traits around pilot sites (so every niche is realized somewhere); intercepts left at 0.

    Args:
        rng: generator of the species stream.
        n_species: pool size (<= 11255).
        pilot_raw_x: raw niche variables of the pilot sites ``(P, 8)``.
        pilot_hfp: human footprint at the pilot sites.
        pilot_xy: pilot coordinates in km ``(P, 2)``.
        richness, sigma, cap: see :func:`target_prevalences`.
        strength, area_slope: see :class:`SpeciesPool`.
    """
    if not 1 <= n_species <= NUM_CLASSES:
        raise ValueError(f"n_species must be within 1..{NUM_CLASSES}, got {n_species}")
    s = n_species
    ids = np.sort(rng.choice(NUM_CLASSES, size=s, replace=False)).astype(np.int64)
    prev = target_prevalences(rng, s, richness, sigma, cap)
    q = np.argsort(np.argsort(prev)) / max(s - 1, 1)  # prevalence quantile, 1 = most common
    x_mean, x_sd = pilot_raw_x.mean(axis=0), pilot_raw_x.std(axis=0) + 1e-9
    hf_mean, hf_sd = float(np.mean(pilot_hfp)), float(np.std(pilot_hfp) + 1e-9)
    px = (pilot_raw_x - x_mean) / x_sd
    origin = rng.integers(0, len(px), size=s)
    breadth = rng.lognormal(0.0, 0.3, size=s) * (0.55 + 0.9 * q)
    mu = px[origin] + rng.normal(0.0, 0.3, size=(s, N_NICHE)) * breadth[:, None]
    sd = breadth[:, None] * rng.uniform(0.6, 1.4, size=(s, N_NICHE))
    inv_var = 1.0 / sd**2
    irrelevant = rng.uniform(size=(s, N_NICHE)) < 0.35
    irrelevant[:, :2] = False  # temperature and precipitation always matter
    inv_var[irrelevant] = 0.0
    pref_p = np.array([0.03, 0.02, 0.15, 0.25, 0.2, 0.15, 0.15, 0.05])
    pref = rng.choice(N_HAB, size=s, p=pref_p)
    hab = rng.normal(0.0, 0.7, size=(s, N_HAB))
    hab[np.arange(s), pref] += 2.0 + rng.uniform(0.0, 1.0, size=s)
    hab *= (1.0 - 0.4 * q)[:, None]
    hf_slope = rng.normal(-0.2, 0.4, size=s)
    radius = (250.0 + 1500.0 * q**1.5) * rng.lognormal(0.0, 0.3, size=s)
    centre = pilot_xy[origin] + rng.normal(0.0, 1.0, size=(s, 2)) * (0.3 * radius)[:, None]
    detect = rng.lognormal(0.0, 1.0, size=s) * (1.0 + 2.0 * q)
    return SpeciesPool(
        ids=ids,
        mu=mu,
        inv_var=inv_var,
        hab=hab,
        hf_slope=hf_slope,
        centre=centre,
        radius=radius,
        edge=0.2 * radius + 50.0,
        intercept=np.zeros(s),
        target_prevalence=prev,
        detectability=detect,
        strength=float(strength),
        area_slope=float(area_slope),
        x_mean=x_mean,
        x_sd=x_sd,
        hf_mean=hf_mean,
        hf_sd=hf_sd,
    )


def calibrate_intercepts(pool: SpeciesPool, pilot: SiteFeatures, iterations: int = 40) -> np.ndarray:
    """Set ``pool.intercept`` so each species' mean probability over the pilot sites equals its target prevalence.

    Vectorized bisection over all species at once, on ``[-30, 12]``; species whose niche is too rare among the pilot
    sites to reach their target stay at the upper bound. Returns the achieved pilot prevalences.
    """
    base = (pool.suitability(pilot) + pool.area_slope * pilot.log_area[:, None] + pilot.effect[:, None]).astype(
        np.float32
    )
    lo = np.full(pool.n, _INTERCEPT_BOUNDS[0], dtype=np.float32)
    hi = np.full(pool.n, _INTERCEPT_BOUNDS[1], dtype=np.float32)
    target = pool.target_prevalence.astype(np.float32)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        mean = _sigmoid(base + mid).mean(axis=0)
        high = mean > target
        hi = np.where(high, mid, hi)
        lo = np.where(high, lo, mid)
    pool.intercept = (0.5 * (lo + hi)).astype(np.float64)
    return _sigmoid(base + pool.intercept.astype(np.float32)).mean(axis=0).astype(np.float64)
