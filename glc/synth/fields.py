"""The latent environment of the synthetic world: smooth fields over Europe, evaluated on the raster grid or at points.

Everything the world contains derives from these fields:

* **relief**: real mountain ranges as Gaussian ridges (Alps, Pyrenees, Carpathians, Scandes, Atlas, ...) plus
  seeded hills and roughness;
* **climate**: annual mean temperature falling with latitude and elevation (lapse rate 6.5 K/km), seasonal
  amplitude rising with continentality, precipitation highest on Atlantic coasts and mountains, Mediterranean summer
  drought; a monthly climatology (:func:`monthly_climatology`) gives the 19 bioclimatic variables
  (:func:`bioclim_from_monthly`) and the monthly cubes;
* **soil**: texture, pH, organic carbon, ... from climate plus seeded geology fields;
* **human footprint**: a kernel sum over real cities and seeded towns, from which the 16 pressure layers derive;
* **land cover**: an IGBP class per pixel chosen from the fields (urban near towns, conifers when cold, shrubs when
  summer-dry, crops in warm lowlands, ...).

Smooth random fields are random Fourier features (:class:`FourierField`); on a grid they are evaluated as a matrix
product (separable cosines), so a 7-megapixel raster costs a few BLAS calls. All values are float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from glc.data.layout import GLC_BBOX
from glc.synth._landmask import load_landmask
from glc.synth.geography import EUROPE, KM_PER_DEG, cities, country_of

_X_SCALE = float(np.cos(np.radians(50.0)))  # longitude degrees -> "latitude-degree" units at 50 N

#: (lon, lat, sx_deg, sy_deg, angle_deg, peak_m): Gaussian ridges for the main real mountain ranges.
MOUNTAINS: tuple[tuple[float, float, float, float, float, float], ...] = (
    (6.4, 45.0, 0.9, 0.35, 70, 2100),
    (7.8, 46.0, 1.0, 0.4, 10, 2400),
    (10.2, 46.6, 1.3, 0.45, 0, 2100),
    (12.8, 47.0, 1.3, 0.4, 0, 2000),
    (15.0, 47.3, 1.0, 0.35, -10, 1300),  # Alps
    (0.6, 42.7, 2.0, 0.3, -5, 1700),
    (-5.2, 43.0, 1.6, 0.25, 0, 1200),
    (-3.8, 40.2, 3.0, 2.0, 0, 650),
    (-4.6, 40.4, 1.4, 0.25, 15, 1200),
    (-2.1, 41.4, 1.5, 0.45, -40, 1000),
    (-3.3, 37.1, 0.7, 0.2, 0, 2000),
    (-2.5, 37.8, 2.0, 0.4, 20, 900),  # Iberia
    (2.9, 45.3, 1.0, 0.8, 0, 900),
    (6.3, 46.8, 0.6, 0.25, 40, 900),
    (7.0, 48.1, 0.25, 0.5, 0, 900),
    (8.2, 48.1, 0.25, 0.45, 0, 900),
    (10.0, 50.8, 2.2, 0.7, 0, 450),
    (13.8, 49.5, 1.6, 0.9, 0, 650),
    (10.6, 51.75, 0.35, 0.15, 0, 700),
    (16.0, 50.7, 1.0, 0.2, 0, 900),
    (5.5, 50.1, 0.8, 0.4, 0, 450),
    (12.8, 42.5, 2.2, 0.35, -38, 1300),
    (17.3, 43.8, 1.9, 0.45, -45, 1300),  # Apennines, Dinarides
    (19.5, 49.2, 1.5, 0.35, 0, 1100),
    (24.9, 47.3, 1.1, 0.3, -54, 1400),
    (24.5, 45.5, 1.6, 0.3, 0, 1600),
    (22.8, 46.5, 0.5, 0.4, 0, 1000),
    (20.0, 49.2, 0.4, 0.15, 0, 1500),  # Carpathians
    (23.5, 42.2, 1.0, 0.5, 0, 1500),
    (25.0, 42.75, 2.3, 0.2, 0, 1300),
    (21.3, 39.8, 0.45, 1.5, -20, 1500),
    (24.7, 41.6, 1.2, 0.4, 0, 1300),
    (22.3, 37.5, 0.7, 0.6, 0, 1000),  # Balkans, Greece
    (10.0, 61.8, 2.7, 0.9, 56, 1300),
    (16.5, 67.3, 2.5, 0.7, 59, 1100),  # Scandes
    (-4.6, 57.0, 1.1, 0.6, 0, 700),
    (-3.7, 52.4, 0.45, 0.5, 0, 500),
    (-2.2, 54.3, 0.25, 0.8, 0, 500),
    (9.05, 42.15, 0.2, 0.45, 0, 1400),
    (9.1, 40.0, 0.35, 0.7, 0, 700),
    (14.3, 37.8, 0.9, 0.3, 0, 800),
    (15.0, 37.75, 0.15, 0.15, 0, 2200),
    (24.9, 35.25, 1.0, 0.1, 0, 1200),  # islands
    (-6.0, 31.6, 3.2, 0.5, 20, 2200),
    (-4.8, 33.3, 1.2, 0.4, 40, 1600),
    (-4.5, 35.0, 1.0, 0.25, 0, 1300),
    (3.5, 36.0, 4.0, 0.4, 5, 1000),
    (2.0, 34.0, 4.0, 0.6, 10, 1200),  # Atlas
    (33.0, 39.0, 3.5, 1.5, 0, 1100),
    (32.5, 37.0, 2.5, 0.4, -15, 2000),
    (34.0, 41.0, 2.5, 0.35, 0, 1500),
    (29.2, 40.0, 0.3, 0.2, 0, 1500),
    (34.2, 44.7, 0.6, 0.15, 0, 900),  # Anatolia, Crimea
    (-18.5, 64.9, 2.4, 0.7, 0, 750),
    (-16.5, 64.4, 0.6, 0.2, 0, 1300),  # Iceland
)

#: Fourier fields: name -> (length scale in degrees, number of features).
_FIELD_SPECS: dict[str, tuple[float, int]] = {
    "rough": (0.35, 48),
    "hills": (1.2, 32),
    "temp": (2.5, 32),
    "amp": (3.0, 24),
    "precip": (1.5, 32),
    "forest": (0.35, 48),
    "forest_type": (0.8, 32),
    "crop": (0.5, 48),
    "shrub": (0.5, 32),
    "grass": (0.5, 32),
    "wet": (0.3, 48),
    "lime": (1.5, 32),
    "tex1": (1.0, 32),
    "tex2": (1.0, 32),
    "tex3": (1.0, 32),
    "organic": (1.0, 32),
    "river": (0.9, 48),
    "rural": (0.6, 32),
    "rail": (0.4, 32),
    "road": (0.3, 32),
    "confidence": (0.3, 32),
}


@dataclass(frozen=True)
class FourierField:
    """A stationary, unit-variance smooth random field ``f(x, y) = sum_k a cos(wx_k x + wy_k y + phi_k)``.

    ``x`` is longitude scaled by cos(50 deg) and ``y`` latitude, both in degrees.
    """

    wx: np.ndarray
    wy: np.ndarray
    phase: np.ndarray

    @classmethod
    def random(cls, rng: np.random.Generator, length_scale: float, n: int) -> FourierField:
        """Draw ``n`` features of a squared-exponential field with the given length scale (degrees)."""
        w = rng.normal(0.0, 1.0 / length_scale, size=(2, n))
        return cls(wx=w[0], wy=w[1], phase=rng.uniform(0.0, 2.0 * np.pi, size=n))

    @property
    def amp(self) -> float:
        return float(np.sqrt(2.0 / len(self.wx)))

    def at(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Values at points (any matching shapes)."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        flat = (lon.ravel() * _X_SCALE)[:, None] * self.wx + lat.ravel()[:, None] * self.wy + self.phase
        return (self.amp * np.cos(flat).sum(axis=1)).reshape(np.broadcast(lon, lat).shape)

    def grid(self, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
        """Values on the grid ``lats x lons`` (shape ``(len(lats), len(lons))``) as two matrix products."""
        by = np.asarray(lats, dtype=np.float64)[:, None] * self.wy
        ax = (np.asarray(lons, dtype=np.float64) * _X_SCALE)[None, :] * self.wx[:, None] + self.phase[:, None]
        return self.amp * (np.cos(by) @ np.cos(ax) - np.sin(by) @ np.sin(ax))


@dataclass(frozen=True)
class Towns:
    """Settlements driving the human footprint: real cities plus seeded towns.

    Attributes:
        lon, lat: centres.
        pop: relative population.
        weight: kernel height (urban core intensity).
        radius_km: kernel sd in km.
    """

    lon: np.ndarray
    lat: np.ndarray
    pop: np.ndarray
    weight: np.ndarray
    radius_km: np.ndarray


def _ridge_params(ridges: np.ndarray) -> tuple[np.ndarray, ...]:
    lon0, lat0, sx, sy, ang, peak = (ridges[:, i] for i in range(6))
    return lon0, lat0, sx, sy, np.radians(ang), peak, np.cos(np.radians(lat0))


def _ridges(lon: np.ndarray, lat: np.ndarray, ridges: np.ndarray) -> np.ndarray:
    """Sum of rotated Gaussian ridges (rows of ``ridges``: lon, lat, sx, sy, angle, peak) at points."""
    out = np.zeros(np.broadcast(lon, lat).shape)
    for lon0, lat0, sx, sy, t, peak, c in zip(*_ridge_params(ridges)):
        dx = (lon - lon0) * c
        dy = lat - lat0
        u = dx * np.cos(t) + dy * np.sin(t)
        v = -dx * np.sin(t) + dy * np.cos(t)
        out = out + peak * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return out


def _ridges_grid(lats: np.ndarray, lons: np.ndarray, ridges: np.ndarray) -> np.ndarray:
    """:func:`_ridges` on the grid ``lats x lons``, each ridge evaluated only within 6 sd of its centre."""
    out = np.zeros((len(lats), len(lons)))
    lat_desc = lats[0] > lats[-1] if len(lats) > 1 else True
    for lon0, lat0, sx, sy, t, peak, c in zip(*_ridge_params(ridges)):
        reach = 6.0 * max(sx, sy)
        if lat_desc:
            r0 = int(np.searchsorted(-lats, -(lat0 + reach)))
            r1 = int(np.searchsorted(-lats, -(lat0 - reach), side="right"))
        else:
            r0 = int(np.searchsorted(lats, lat0 - reach))
            r1 = int(np.searchsorted(lats, lat0 + reach, side="right"))
        c0 = int(np.searchsorted(lons, lon0 - reach / c))
        c1 = int(np.searchsorted(lons, lon0 + reach / c, side="right"))
        if r0 >= r1 or c0 >= c1:
            continue
        dx = ((lons[c0:c1] - lon0) * c)[None, :]
        dy = (lats[r0:r1] - lat0)[:, None]
        u = dx * np.cos(t) + dy * np.sin(t)
        v = -dx * np.sin(t) + dy * np.cos(t)
        out[r0:r1, c0:c1] += peak * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


@dataclass
class EnvironmentModel:
    """All latent fields of one world (deterministic given the seed).

    Use :meth:`create`; then :meth:`grid_fields` for a raster row block or :meth:`point_fields` for sites.
    """

    ridges: np.ndarray
    fields: dict[str, FourierField]
    towns: Towns
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def create(cls, rng: np.random.Generator, n_towns: int) -> EnvironmentModel:
        """Draw the seeded parts of the environment (hills, Fourier fields, towns)."""
        east = GLC_BBOX[2]
        n_hills = 60
        hills = np.column_stack(
            [
                rng.uniform(-11, 35, n_hills),
                rng.uniform(34, 70, n_hills),
                rng.uniform(0.2, 0.8, n_hills),
                rng.uniform(0.2, 0.8, n_hills),
                rng.uniform(-90, 90, n_hills),
                rng.uniform(150, 600, n_hills),
            ]
        )
        ridges = np.vstack([np.array(MOUNTAINS, dtype=np.float64), hills])
        fields = {name: FourierField.random(rng, ls, n) for name, (ls, n) in _FIELD_SPECS.items()}
        c = cities()
        # Seeded towns: on land, mostly in Europe, fewer in the mountains and the far north.
        mask = load_landmask()
        tl, tt = [], []
        while sum(len(a) for a in tl) < n_towns:
            lon = rng.uniform(-11.0, east, 4 * n_towns)
            lat = rng.uniform(34.0, 70.0, 4 * n_towns)
            keep = mask.is_land(lon, lat)
            elev = _ridges(lon, lat, ridges)
            keep &= rng.uniform(size=lon.shape) < np.exp(-elev / 900.0) * np.where(lat > 62, 0.3, 1.0)
            keep &= np.isin(country_of(lon, lat), list(EUROPE)) | (rng.uniform(size=lon.shape) < 0.3)
            tl.append(lon[keep])
            tt.append(lat[keep])
        tlon = np.concatenate(tl)[:n_towns]
        tlat = np.concatenate(tt)[:n_towns]
        tpop = np.minimum(rng.lognormal(np.log(0.03), 0.9, n_towns), 0.5)
        lon = np.concatenate([c.lon, tlon])
        lat = np.concatenate([c.lat, tlat])
        pop = np.concatenate([c.pop, tpop])
        towns = Towns(
            lon=lon,
            lat=lat,
            pop=pop,
            weight=0.55 + 0.15 * np.log10(1.0 + 10.0 * pop),
            radius_km=3.0 + 5.0 * np.sqrt(pop),
        )
        return cls(ridges=ridges, fields=fields, towns=towns)

    # ----------------------------------------------------------------------------------------------- raw fields
    def _town_kernel_grid(self, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
        t = self.towns
        gy = t.weight * np.exp(-0.5 * ((lats[:, None] - t.lat) * KM_PER_DEG / t.radius_km) ** 2)
        gx = np.exp(
            -0.5
            * (
                (lons[None, :] - t.lon[:, None])
                * np.cos(np.radians(t.lat))[:, None]
                * KM_PER_DEG
                / t.radius_km[:, None]
            )
            ** 2
        )
        return gy @ gx

    def _town_kernel_points(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        t = self.towns
        out = np.empty(lon.shape)
        step = 20000
        for s in range(0, len(lon), step):
            dx = (lon[s : s + step, None] - t.lon) * np.cos(np.radians(t.lat)) * KM_PER_DEG
            dy = (lat[s : s + step, None] - t.lat) * KM_PER_DEG
            out[s : s + step] = (t.weight * np.exp(-0.5 * (dx * dx + dy * dy) / t.radius_km**2)).sum(axis=1)
        return out

    def grid_fields(self, lats: np.ndarray, lons: np.ndarray) -> dict[str, np.ndarray]:
        """Every derived field on the grid ``lats x lons`` (2-D arrays)."""
        lat2, lon2 = np.meshgrid(np.asarray(lats, dtype=np.float64), np.asarray(lons, dtype=np.float64), indexing="ij")
        raw = {name: f.grid(lats, lons) for name, f in self.fields.items()}
        raw["ridges"] = _ridges_grid(
            np.asarray(lats, dtype=np.float64), np.asarray(lons, dtype=np.float64), self.ridges
        )
        raw["towns"] = self._town_kernel_grid(np.asarray(lats, dtype=np.float64), np.asarray(lons, dtype=np.float64))
        return derive_fields(lon2, lat2, raw)

    def point_fields(self, lon: np.ndarray, lat: np.ndarray, with_towns: bool = True) -> dict[str, np.ndarray]:
        """Every derived field at points (1-D arrays)."""
        lon = np.asarray(lon, dtype=np.float64).ravel()
        lat = np.asarray(lat, dtype=np.float64).ravel()
        raw = {name: f.at(lon, lat) for name, f in self.fields.items()}
        raw["ridges"] = _ridges(lon, lat, self.ridges)
        raw["towns"] = self._town_kernel_points(lon, lat) if with_towns else np.zeros_like(lon)
        return derive_fields(lon, lat, raw)


def derive_fields(lon: np.ndarray, lat: np.ndarray, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Turn raw fields into named physical fields (elementwise; same code for grids and points).

    Returns a dict with, among others: ``elev`` (m), ``cont`` (continentality 0..1), ``dry`` (Mediterranean summer
    drought 0..1), ``t_mean`` (deg C), ``t_amp`` (half annual range, deg C), ``p_ann`` (mm), ``dtr`` (deg C),
    ``towns`` (settlement kernel), and the raw Fourier fields.
    """
    f = dict(raw)
    elev = 80.0 + raw["ridges"] + 180.0 * raw["rough"] * (0.5 + raw["ridges"] / 1000.0) + 60.0 * raw["hills"]
    elev = np.clip(elev, 0.0, 4800.0)
    iberia = np.exp(-0.5 * (((lon + 3.8) / 1.8) ** 2 + ((lat - 40.0) / 1.5) ** 2))
    cont = np.clip(_sigmoid((lon - 12.0) / 7.0) + 0.35 * iberia, 0.0, 1.0)
    dry = _sigmoid((43.8 - lat) / 1.0)
    dry = dry * (1.0 - 0.8 * _sigmoid((lat - 42.6) / 0.3) * _sigmoid((-1.5 - lon) / 0.5))
    t_mean = 18.5 - 0.55 * (lat - 36.0) + 1.5 * (1.0 - cont) - 1.0 - 6.5 * elev / 1000.0 + 0.8 * raw["temp"]
    t_amp = np.clip(5.0 + 9.0 * cont * (1.0 - 0.35 * dry) + 0.5 * raw["amp"], 3.0, 18.0)
    p_ann = 380.0 + 700.0 * (1.0 - cont) ** 1.3 * (1.0 - 0.5 * dry) + 0.6 * elev + 110.0 * raw["precip"]
    p_ann = np.clip(p_ann * np.where(lat < 33.0, 0.5, 1.0), 120.0, 2900.0)
    dtr = 6.5 + 4.0 * cont + 3.0 * dry + 1.2 * elev / 1000.0
    f.update(elev=elev, cont=cont, dry=dry, t_mean=t_mean, t_amp=t_amp, p_ann=p_ann, dtr=dtr)
    return f


# ------------------------------------------------------------------------------------------------------ climate
def monthly_climatology(
    t_mean: np.ndarray, t_amp: np.ndarray, p_ann: np.ndarray, dtr: np.ndarray, cont: np.ndarray, dry: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean monthly temperature (deg C), precipitation (mm) and diurnal range (deg C), each ``(12, ...)``.

    Temperature peaks mid-July; precipitation peaks in winter where summers are dry and in summer where the climate
    is continental. The month axis comes first so that reductions over it vectorize over the pixels.
    """
    m = np.arange(1, 13, dtype=np.float64).reshape((12,) + (1,) * np.ndim(t_mean))
    tm = t_mean + t_amp * np.cos(2.0 * np.pi * (m - 7.2) / 12.0)
    w = (
        1.0
        + 0.9 * dry * np.cos(2.0 * np.pi * (m - 12.5) / 12.0)
        + 0.35 * cont * (1.0 - dry) * np.cos(2.0 * np.pi * (m - 6.8) / 12.0)
    )
    w = np.maximum(w, 0.05)
    pm = p_ann * w / w.sum(axis=0)
    dm = dtr * (1.0 + 0.25 * np.cos(2.0 * np.pi * (m - 7.0) / 12.0))
    return tm, pm, dm


def _quarters(x: np.ndarray) -> np.ndarray:
    """Means of the 12 circular 3-month windows of ``x[12, ...]`` (window ``i`` = months ``i, i+1, i+2``)."""
    return (x + np.roll(x, -1, axis=0) + np.roll(x, -2, axis=0)) / 3.0


def _pick(values: np.ndarray, key: np.ndarray, fn: str) -> np.ndarray:
    """``values[argmax/argmin(key, axis 0)]`` per pixel."""
    idx = getattr(np, fn)(key, axis=0)[None]
    return np.take_along_axis(values, idx, axis=0)[0]


def bioclim_from_monthly(tm: np.ndarray, pm: np.ndarray, dm: np.ndarray) -> np.ndarray:
    """The 19 WorldClim/CHELSA bioclimatic variables in CHELSA integer scaling, shape ``(19, ...)`` (int64).

    Inputs are ``(12, ...)`` monthly arrays (see :func:`monthly_climatology`). Temperatures are K x 10 (bio1, 5, 6,
    8-11), ranges deg C x 10 (bio2, 7), isothermality and seasonalities x 10 (bio3, 4, 15), precipitation mm x 10
    (bio12-14, 16-19).
    """
    tq, pq = _quarters(tm), _quarters(pm)
    bio = np.empty((19,) + tm.shape[1:])
    bio[0] = tm.mean(axis=0)
    bio[1] = dm.mean(axis=0)
    bio[4] = (tm + dm / 2.0).max(axis=0)
    bio[5] = (tm - dm / 2.0).min(axis=0)
    bio[6] = bio[4] - bio[5]
    bio[2] = 100.0 * bio[1] / np.maximum(bio[6], 1e-6)
    bio[3] = 100.0 * tm.std(axis=0)
    bio[7] = _pick(tq, pq, "argmax")
    bio[8] = _pick(tq, pq, "argmin")
    bio[9] = tq.max(axis=0)
    bio[10] = tq.min(axis=0)
    bio[11] = pm.sum(axis=0)
    bio[12] = pm.max(axis=0)
    bio[13] = pm.min(axis=0)
    bio[14] = 100.0 * pm.std(axis=0) / (1.0 + pm.mean(axis=0))
    bio[15] = 3.0 * pq.max(axis=0)
    bio[16] = 3.0 * pq.min(axis=0)
    bio[17] = 3.0 * _pick(pq, tq, "argmax")
    bio[18] = 3.0 * _pick(pq, tq, "argmin")
    kelvin = [0, 4, 5, 7, 8, 9, 10]
    bio[kelvin] = bio[kelvin] + 273.15
    return np.rint(bio * 10.0).astype(np.int64)


# ----------------------------------------------------------------------------------------------- land cover
#: IGBP (MODIS LC_Type1) codes used by the generator.
IGBP_WATER, IGBP_URBAN, IGBP_SNOW, IGBP_BARREN = 17, 13, 15, 16


def igbp_class(f: dict[str, np.ndarray], lat: np.ndarray) -> np.ndarray:
    """IGBP land-cover class (1..17) of each cell from the derived fields (land cells; the sea is set elsewhere)."""
    elev, t, dry, p, towns = f["elev"], f["t_mean"], f["dry"], f["p_ann"], f["towns"]
    forest = f["forest"] + 0.3 + 0.0006 * (p - 600.0) - 0.9 * dry + 0.5 * (elev > 800.0)
    crop = 0.9 - 0.0012 * elev - 0.05 * np.abs(t - 10.0) + 0.8 * f["crop"] - 0.6 * (lat > 60.0) + 0.3 * towns
    shrub = 1.6 * dry - 0.4 + 0.6 * f["shrub"]
    grass = 0.2 + 0.5 * ((elev > 600.0) & (elev < 2000.0)) + 0.6 * f["grass"]
    scores = np.stack([forest, crop, shrub, grass])
    best = np.argmax(scores, axis=0)
    second = np.sort(scores, axis=0)[-2]
    margin = np.max(scores, axis=0) - second
    cold = (t < 5.0) | (elev > 1100.0) | (lat > 58.0)
    forest_cls = np.where(
        cold, 1, np.where(dry > 0.6, np.where(f["forest_type"] > 0.0, 2, 8), np.where(f["forest_type"] > 0.3, 5, 4))
    )
    crop_cls = np.where(margin > 0.3, 12, 14)
    shrub_cls = np.where(f["shrub"] > 0.5, 6, 7)
    grass_cls = np.where((f["grass"] < -0.6) & (dry < 0.5), 9, 10)
    cls = np.choose(best, [forest_cls, crop_cls, shrub_cls, grass_cls])
    cls = np.where((f["wet"] > 1.4) & (elev < 300.0), 11, cls)
    cls = np.where((lat > 65.0) & (t < 1.0) & (cls != 1), 7, cls)
    cls = np.where((elev > 2200.0) | (t < -3.0), IGBP_BARREN, cls)
    cls = np.where(elev > 3000.0, IGBP_SNOW, cls)
    cls = np.where(towns > 0.45, IGBP_URBAN, cls)
    return cls.astype(np.int64)


# Lookup tables IGBP (index 0..17) -> the other MODIS land-cover layers (plausible, not official crosswalks).
_UMD = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 12, 11, 15, 0])
_LAI = np.array([0, 8, 7, 8, 6, 6, 5, 5, 4, 3, 1, 0, 2, 10, 2, 0, 9, 0])
_BGC = np.array([0, 1, 2, 3, 4, 5, 6, 6, 7, 7, 6, 0, 7, 8, 7, 0, 0, 0])
_PFT = np.array([0, 1, 2, 3, 4, 5, 6, 6, 7, 7, 9, 0, 8, 10, 8, 11, 11, 0])
_LCCS1 = np.array([0, 11, 12, 13, 14, 15, 31, 32, 21, 22, 36, 27, 1, 1, 1, 2, 1, 3])
_LCCS2 = np.array([0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 1, 9, 1, 2, 1, 3])
_LCCS3 = np.array([0, 10, 10, 10, 10, 10, 30, 30, 20, 20, 40, 27, 10, 9, 10, 1, 1, 3])


def landcover_bands(igbp: np.ndarray, confidence: np.ndarray, land: np.ndarray) -> np.ndarray:
    """The 13 MODIS-like land-cover bands (uint8) from the IGBP class; 255 where ``land`` is False and off-grid."""
    out = np.empty((13,) + igbp.shape, dtype=np.uint8)
    out[0] = igbp
    for i, lut in enumerate((_UMD, _LAI, _BGC, _PFT), start=1):
        out[i] = lut[igbp]
    conf = np.clip(np.rint(70.0 + 15.0 * confidence), 0, 100)
    out[5] = conf
    out[6] = np.clip(conf - 5, 0, 100)
    out[7] = np.clip(conf + 5, 0, 100)
    out[8] = _LCCS1[igbp]
    out[9] = _LCCS2[igbp]
    out[10] = _LCCS3[igbp]
    out[11] = np.clip(np.rint(2.0 + 2.0 * np.abs(confidence)), 0, 10)
    out[12] = np.where(igbp == IGBP_WATER, 1, 2)
    out[:, ~land] = 255
    return out


# -------------------------------------------------------------------------------------------- human footprint
def human_footprint(f: dict[str, np.ndarray], igbp: np.ndarray) -> dict[str, np.ndarray]:
    """The 16 human-footprint layers (float64, rounded to what the raster dtype stores), keyed by raster stem."""
    k, elev = f["towns"], f["elev"]
    natural = np.isin(igbp, [1, 2, 4, 5, 15, 16])
    rural = (10.0 + 40.0 * _sigmoid(2.0 * f["rural"])) * np.where(natural, 0.2, 1.0)
    pop = 3000.0 * k + rural
    out: dict[str, np.ndarray] = {}
    out["Popdensity2010"] = np.round(np.minimum(10.0, 3.333 * np.log10(pop + 1.0)), 3)
    out["Popdensity1990"] = np.round(np.minimum(10.0, 3.333 * np.log10(0.92 * pop + 1.0)), 3)
    out["Built2009"] = np.where((k > 0.25) | (igbp == IGBP_URBAN), 10.0, 0.0)
    out["Built1994"] = np.where(k > 0.32, 10.0, 0.0)
    out["Lights2009"] = np.rint(np.minimum(10.0, 10.0 * (1.0 - np.exp(-k / 0.25))))
    out["Lights1994"] = np.rint(np.minimum(10.0, 10.0 * (1.0 - np.exp(-k / 0.35))))
    out["croplands2005"] = np.where(igbp == 12, 7.0, np.where(igbp == 14, 4.0, 0.0))
    out["croplands1992"] = np.where(igbp == 12, 7.0, np.where(igbp == 14, 5.0, 0.0))
    grassy = np.select([igbp == 10, igbp == 9, igbp == 14, igbp == 12], [0.8, 0.5, 0.4, 0.15], 0.05)
    out["Pasture2009"] = np.round(4.0 * grassy * (0.6 + 0.4 * _sigmoid(f["rural"])), 3)
    out["Pasture1993"] = np.round(np.minimum(4.0, 1.05 * out["Pasture2009"]), 3)
    nav = 4.0 * np.exp(-np.abs(f["river"]) / 0.06) * (elev < 400.0)
    out["NavWater2009"] = np.round(nav, 3)
    out["NavWater1994"] = np.round(0.95 * nav, 3)
    out["Railways"] = np.where((k > 0.12) & (f["rail"] > 0.0), 8.0, 0.0)
    out["Roads"] = np.round(np.minimum(8.0, 8.0 * np.minimum(1.0, 2.5 * k) + 2.0 * _sigmoid(2.0 * f["road"])), 3)
    for new, old in (
        (
            "HFP2009",
            (
                "Built2009",
                "Popdensity2010",
                "Lights2009",
                "croplands2005",
                "Pasture2009",
                "Roads",
                "Railways",
                "NavWater2009",
            ),
        ),
        (
            "HFP1993",
            (
                "Built1994",
                "Popdensity1990",
                "Lights1994",
                "croplands1992",
                "Pasture1993",
                "Roads",
                "Railways",
                "NavWater1994",
            ),
        ),
    ):
        out[new] = np.round(np.minimum(50.0, sum(out[o] for o in old)), 3)
    return out


# ------------------------------------------------------------------------------------------------------- soil
def soil(f: dict[str, np.ndarray], igbp: np.ndarray) -> dict[str, np.ndarray]:
    """The 9 SoilGrids layers in SoilGrids integer units (float64 holding integers), keyed by variable."""
    t, p, dry, elev = f["t_mean"], f["p_ann"], f["dry"], f["elev"]
    logits = np.stack([0.8 * f["tex1"] + 0.3, 0.8 * f["tex2"], 0.8 * f["tex3"] - 0.2])
    frac = np.exp(logits) / np.exp(logits).sum(axis=0)
    sand, silt, clay = (np.rint(1000.0 * frac[i]) for i in range(3))
    forest = np.isin(igbp, [1, 2, 4, 5])
    soc = (
        120.0
        + 400.0 * _sigmoid((p - 900.0) / 300.0)
        + 300.0 * _sigmoid((4.0 - t) / 2.0)
        + 80.0 * f["organic"]
        + 60.0 * forest
    )
    soc = np.clip(soc, 30.0, 1500.0)
    out = {
        "bdod": np.clip(150.0 - 0.04 * soc - 5.0 * f["organic"], 70.0, 175.0),
        "cec": np.clip(80.0 + 0.25 * clay + 0.15 * soc, 30.0, 600.0),
        "cfvo": np.clip(60.0 + 0.12 * elev + 40.0 * f["rough"], 0.0, 600.0),
        "clay": clay,
        "nitrogen": np.clip(0.7 * soc + 80.0 + 40.0 * f["organic"], 30.0, 1500.0),
        "phh2o": np.clip(58.0 + 12.0 * dry + 8.0 * f["lime"] - 6.0 * (p > 900.0) - 5.0 * (t < 4.0), 38.0, 86.0),
        "sand": sand,
        "silt": silt,
        "soc": soc,
    }
    return {k: np.rint(v) for k, v in out.items()}
