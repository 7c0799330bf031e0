"""Geolocation nets: species logits from a survey's location (plus optional year, region, env and gfv extras).

A :class:`GeolocationNet` is ``coordinate noise (training only) -> coordinate encoder -> [extras] -> body``:

* **Encoders** (``model.encoder``): ``"xy"``, ``"sinusoidal"`` or ``"sh"``, the coordinate encoders of
  :mod:`glc.models.location` (:data:`~glc.models.location.COORDINATE_ENCODERS`).

* **Body**: ``hidden == 0``: a linear model (``Linear(in, C)``). Otherwise a 2-layer MLP as DS@GT's geolocation
  model: ``Linear(in, hidden) -> ReLU -> Dropout -> Linear(hidden, C)``; with ``siren = true`` the hidden layer is a
  SIREN sine layer (Sitzmann et al., "Implicit Neural Representations with Periodic Activation Functions",
  NeurIPS 2020): ``sin(w0 (W z + b))`` with ``w0 = 30`` and ``W ~ U(-1/in, 1/in)`` (their first-layer init), and the
  output layer gets their hidden-layer init ``U(-sqrt(6/hidden)/w0, +sqrt(6/hidden)/w0)``.

* **Coordinate noise** (training mode only, ``coord_noise_km`` > 0): an isotropic 2-D Gaussian displacement
  ``(dx, dy) ~ N(0, sigma² I)`` in EPSG:3035 metres. ``coord_noise_km`` is its **mean displacement**
  ``E|d| = sigma sqrt(pi / 2)`` (the Rayleigh mean), so ``sigma = coord_noise_km / sqrt(pi / 2)``
  (5 km -> sigma = 3.99 km per axis). The same ``(dx, dy)`` moves lon/lat for the ``sh`` encoder: lon/lat are
  projected with a spherical Lambert azimuthal equal-area projection with EPSG:3035's centre (authalic radius),
  shifted by ``(dx, dy)`` and projected back, so x/y and lon/lat still describe one point (to within the
  sphere-vs-GRS80 difference: < 0.5 % of the displacement over Europe, tested against pyproj).
  Eval mode never adds noise.

* **Extras** (``model.extras``, any of): ``"year"`` as ``(year - 2019) / 2`` (GLC24's 2017-2021 -> [-1, 1]; years
  outside 1950-2100 raise), ``"region"`` one-hot over ``n_regions`` codes, ``"env"`` the standardised env vector,
  ``"gfv"`` the dense graph feature vector (:mod:`glc.features.graph`, one value per species column, already
  globally scaled to about [0, 1]). Vector extras are concatenated to the encoding as they are.

Batches are the dicts of :mod:`glc.loaders` (float32 ``x``/``y``/``lon``/``lat`` [B], int64 ``year``/``region``
[B], float32 ``env`` [B, E], float32 ``gfv`` [B, G]); :attr:`GeolocationNet.input_columns` lists the keys a net
reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glc.models.location import (
    COORDINATE_ENCODERS,
    ENCODERS,
    CoordinateNoise,
)
from glc.models.registry import ModelSpec, register
from glc.params import Param, defaults_of

__all__ = [
    "GEOLOCATION_PARAMS",
    "LOCATION_PARAMS",
    "EXTRAS",
    "GeolocationNet",
    "SineLayer",
    "build_geolocation_net",
    "extra_dims",
    "location_branch",
]

#: ``year`` extra: ``(year - YEAR_CENTRE) / YEAR_SCALE``; years outside ``YEAR_RANGE`` raise.
YEAR_CENTRE = 2019.0
YEAR_SCALE = 2.0
YEAR_RANGE = (1950, 2100)
#: SIREN frequency of the sine layer (Sitzmann et al. 2020).
SIREN_W0 = 30.0

EXTRAS = ("year", "region", "env", "gfv")
#: Extras that are float vectors (batch shape ``[B, width]``), concatenated as they are.
VECTOR_EXTRAS = ("env", "gfv")


# ------------------------------------------------------------------------------------------------ bodies
class SineLayer(nn.Module):
    """SIREN layer ``sin(w0 (W z + b))`` with the first-layer init of Sitzmann et al. (2020): ``W ~ U(-1/in, 1/in)``."""

    def __init__(self, in_features: int, out_features: int, w0: float = SIREN_W0) -> None:
        super().__init__()
        self.w0 = float(w0)
        self.linear = nn.Linear(in_features, out_features)
        with torch.no_grad():
            self.linear.weight.uniform_(-1.0 / in_features, 1.0 / in_features)

    def forward(self, z: Tensor) -> Tensor:
        """``sin(w0 * linear(z))``."""
        return torch.sin(self.w0 * self.linear(z))


def _body(in_dim: int, num_classes: int, hidden: int, siren: bool, dropout: float) -> nn.Module:
    if hidden == 0:
        return nn.Linear(in_dim, num_classes)
    out = nn.Linear(hidden, num_classes)
    if siren:
        bound = math.sqrt(6.0 / hidden) / SIREN_W0
        with torch.no_grad():
            out.weight.uniform_(-bound, bound)
        return nn.Sequential(SineLayer(in_dim, hidden), nn.Dropout(dropout), out)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), out)


# ------------------------------------------------------------------------------------------------ the net
class GeolocationNet(nn.Module):
    """Coordinate noise -> encoder -> (+ extras) -> linear / MLP / SIREN body -> logits ``[B, num_classes]``.

    Args:
        num_classes: number of species columns ``C``.
        encoder: ``"xy"``, ``"sinusoidal"`` or ``"sh"``.
        hidden: hidden units of the 2-layer MLP; ``0`` = linear model.
        siren: SIREN sine hidden layer instead of Linear + ReLU (needs ``hidden > 0``).
        sh_degree: ``sh``: number of Legendre degrees ``L`` (``L²`` features).
        n_scales, min_scale_km, max_scale_km: ``sinusoidal``: the wavelengths.
        coord_noise_km: mean displacement of the training-time coordinate noise (``0`` = off).
        extras: any of ``"year"``, ``"region"``, ``"env"``, ``"gfv"``.
        n_regions: number of region codes (needed with ``"region"``).
        env_dim: length of the env vector (needed with ``"env"``).
        dropout: dropout after the hidden layer, in ``[0, 1)`` (must be 0 for the linear model).
        gfv_dim: length of the dense graph feature vector (needed with ``"gfv"``; meta.json ``gfv_dim``).

    Raises:
        ValueError: naming the parameter, on any invalid value.
    """

    def __init__(
        self,
        num_classes: int,
        encoder: str = "sinusoidal",
        hidden: int = 256,
        siren: bool = False,
        sh_degree: int = 10,
        n_scales: int = 8,
        min_scale_km: float = 1.0,
        max_scale_km: float = 2000.0,
        coord_noise_km: float = 5.0,
        extras: Sequence[str] = (),
        n_regions: int = 0,
        env_dim: int = 0,
        dropout: float = 0.0,
        gfv_dim: int = 0,
    ) -> None:
        super().__init__()
        _validate(
            num_classes,
            encoder,
            hidden,
            siren,
            sh_degree,
            n_scales,
            min_scale_km,
            max_scale_km,
            coord_noise_km,
            extras,
            n_regions,
            env_dim,
            dropout,
            gfv_dim,
        )
        self.num_classes = int(num_classes)
        self.encoder_name = encoder
        self.extras = tuple(extras)
        self.n_regions = int(n_regions)
        self.env_dim = int(env_dim)
        self.gfv_dim = int(gfv_dim)
        self.noise = CoordinateNoise(coord_noise_km)
        self.coords = COORDINATE_ENCODERS[encoder]
        self.encoder: nn.Module = self.coords.build(
            {"n_scales": n_scales, "min_scale_km": min_scale_km, "max_scale_km": max_scale_km, "sh_degree": sh_degree}
        )
        in_dim = self.encoder.out_dim
        in_dim += ("year" in self.extras) + (self.n_regions if "region" in self.extras else 0)
        in_dim += sum(self.vector_dims[k] for k in VECTOR_EXTRAS if k in self.extras)
        self.in_dim = in_dim
        self.body = _body(in_dim, self.num_classes, int(hidden), bool(siren), float(dropout))

    @property
    def vector_dims(self) -> dict[str, int]:
        """Widths of the vector extras: ``{"env": env_dim, "gfv": gfv_dim}``."""
        return {"env": self.env_dim, "gfv": self.gfv_dim}

    @property
    def out_dim(self) -> int:
        """Width of the output (``num_classes``; the latent width when the net is a branch of a fused model)."""
        return self.num_classes

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Batch keys this net reads: the coordinates its encoder needs, then its extras."""
        return self.coords.coords + self.extras

    def _get(self, batch: Mapping[str, Tensor], key: str) -> Tensor:
        if key not in batch:
            raise KeyError(
                f"GeolocationNet(encoder={self.encoder_name!r}, extras={list(self.extras)}) needs batch key {key!r}, "
                f"batch has {sorted(batch)}; add {key!r} to the data module's columns"
            )
        return batch[key]

    def _check(self, t: dict[str, Tensor]) -> None:
        """Shape checks, then one device sync for every value check (finite coordinates/env/gfv, year and region
        range)."""
        n = None
        widths = self.vector_dims
        for key, v in t.items():
            want = 2 if key in widths else 1
            if v.dim() != want or (n is not None and v.shape[0] != n) or (key in widths and v.shape[1] != widths[key]):
                shape = f"[B, {key}_dim={widths[key]}]" if key in widths else "[B]"
                raise ValueError(
                    f"batch[{key!r}] has shape {tuple(v.shape)}, expected {shape} with one batch size B for all keys"
                )
            n = v.shape[0]
        checks = {}
        for key, v in t.items():
            if key in ("x", "y", "lon", "lat", *VECTOR_EXTRAS):
                checks[key] = ~torch.isfinite(v).all()
            elif key == "year":
                checks[key] = ((v < YEAR_RANGE[0]) | (v > YEAR_RANGE[1])).any()
            elif key == "region":
                checks[key] = ((v < 0) | (v >= self.n_regions)).any()
        bad = [k for k, flag in zip(checks, torch.stack(list(checks.values())).tolist()) if flag]
        if bad:
            key = bad[0]
            v = t[key]
            if key == "year":
                first = v[(v < YEAR_RANGE[0]) | (v > YEAR_RANGE[1])][0].item()
                what = f"years outside {YEAR_RANGE} (e.g. {first}); a missing year must not be filled with 0"
            elif key == "region":
                first = v[(v < 0) | (v >= self.n_regions)][0].item()
                what = (
                    f"region codes outside 0..{self.n_regions - 1} (e.g. {first}); n_regions must come from the same "
                    "meta.json"
                )
            else:
                what = f"{int((~torch.isfinite(v)).sum())} non-finite value(s)"
            raise ValueError(f"batch[{key!r}] has {what}; fix the model-input table (checks failed for {bad})")

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Logits ``[B, num_classes]`` of a loader batch (see :attr:`input_columns`)."""
        t = {key: self._get(batch, key) for key in self.input_columns}
        self._check(t)
        dtype = self.body.weight.dtype if isinstance(self.body, nn.Linear) else self.body[-1].weight.dtype
        if self.coords.geographic:
            _, _, lon, lat = self.noise(None, None, t["lon"], t["lat"])
            z = self.encoder(lon, lat)
        else:
            x, y, _, _ = self.noise(t["x"], t["y"])
            z = self.encoder(x, y)
        feats = [z.to(dtype)]
        if "year" in self.extras:
            feats.append(((t["year"].to(torch.float64) - YEAR_CENTRE) / YEAR_SCALE).to(dtype).unsqueeze(-1))
        if "region" in self.extras:
            feats.append(F.one_hot(t["region"].long(), self.n_regions).to(dtype))
        for key in VECTOR_EXTRAS:
            if key in self.extras:
                feats.append(t[key].to(dtype))
        return self.body(torch.cat(feats, dim=-1))


def _validate(
    num_classes: Any,
    encoder: Any,
    hidden: Any,
    siren: Any,
    sh_degree: Any,
    n_scales: Any,
    min_scale_km: Any,
    max_scale_km: Any,
    coord_noise_km: Any,
    extras: Any,
    n_regions: Any,
    env_dim: Any,
    dropout: Any,
    gfv_dim: Any = 0,
) -> None:
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def fail(msg: str) -> None:
        raise ValueError(f"model.{msg}")

    if not is_int(num_classes) or num_classes < 1:
        fail(f"num_classes must be an integer >= 1 (meta.json num_classes), got {num_classes!r}")
    if encoder not in ENCODERS:
        fail(f"encoder {encoder!r} is unknown; valid encoders are {list(ENCODERS)}")
    if not is_int(hidden) or hidden < 0:
        fail(f"hidden must be an integer >= 0 (0 = linear model), got {hidden!r}")
    if not isinstance(siren, bool):
        fail(f"siren must be true or false, got {siren!r}")
    if siren and hidden == 0:
        fail("siren = true needs hidden > 0 (the SIREN body is a hidden sine layer); set hidden or siren = false")
    if not is_int(sh_degree) or not 1 <= sh_degree <= 100:
        fail(f"sh_degree must be an integer in [1, 100] (sh_degree² features), got {sh_degree!r}")
    if not is_int(n_scales) or n_scales < 1:
        fail(f"n_scales must be an integer >= 1, got {n_scales!r}")
    if not is_num(min_scale_km) or not is_num(max_scale_km) or not 0 < min_scale_km <= max_scale_km:
        fail(f"min_scale_km / max_scale_km must satisfy 0 < min <= max (km), got {min_scale_km!r} / {max_scale_km!r}")
    if not is_num(coord_noise_km) or coord_noise_km < 0:
        fail(f"coord_noise_km must be a finite number >= 0 (0 = off), got {coord_noise_km!r}")
    if isinstance(extras, str) or not isinstance(extras, Sequence):
        fail(f"extras must be a list of names from {list(EXTRAS)}, got {extras!r}")
    unknown = [e for e in extras if e not in EXTRAS]
    if unknown:
        fail(f"extras contains unknown extra(s) {unknown}; valid extras are {list(EXTRAS)}")
    if len(set(extras)) != len(extras):
        fail(f"extras lists an extra twice: {list(extras)}")
    if "region" in extras and (not is_int(n_regions) or n_regions < 1):
        fail(
            f"extras has 'region' but n_regions is {n_regions!r}; pass extra_dims['region'] = meta.json n_regions "
            "(>= 1)"
        )
    if "env" in extras and (not is_int(env_dim) or env_dim < 1):
        fail(
            f"extras has 'env' but env_dim is {env_dim!r}; build the EnvFeatures artifact (env_dim >= 1) or drop "
            "'env' from model.extras"
        )
    if "gfv" in extras and (not is_int(gfv_dim) or gfv_dim < 1):
        fail(
            f"extras has 'gfv' but gfv_dim is {gfv_dim!r}; build the model inputs with the GraphFeatures artifact "
            "(meta.json gfv_dim >= 1) or drop 'gfv' from model.extras"
        )
    if not is_num(dropout) or not 0 <= dropout < 1:
        fail(f"dropout must be in [0, 1), got {dropout!r}")
    if dropout > 0 and hidden == 0:
        fail(f"dropout = {dropout} has no effect on the linear model (hidden = 0); set dropout = 0 or hidden > 0")


#: The ``[model]`` table of ``kind = "geolocation"`` (and of every ``[model.location]`` branch of a fused net).
GEOLOCATION_PARAMS: dict[str, Param] = {
    "encoder": Param(
        "sinusoidal",
        "xy (scaled EPSG:3035 x/y) | sinusoidal (multi-scale) | sh (spherical harmonics)",
        choices=ENCODERS,
    ),
    "hidden": Param(256, "hidden units of the 2-layer MLP; 0 = linear model", min=0),
    "siren": Param(False, "SIREN body (sine activations) instead of the ReLU MLP"),
    "sh_degree": Param(10, "sh: Legendre degree L (L^2 functions)", min=1, max=100),
    "n_scales": Param(8, "sinusoidal: number of scales, geometric from min_scale_km to max_scale_km", min=1),
    "min_scale_km": Param(
        50.0,
        "sinusoidal: smallest wavelength (50 km validated better than 1 or 20 km on the demo world)",
        min=0.0,
        min_exclusive=True,
    ),
    "max_scale_km": Param(2000.0, "sinusoidal: largest wavelength", min=0.0, min_exclusive=True),
    "coord_noise_km": Param(5.0, "mean displacement of the Gaussian coordinate noise in training (0 = off)", min=0.0),
    "extras": Param(
        [],
        "extra inputs: any of year, region, env, gfv (env / gfv are the feature sets of the same name)",
        type="list[str]",
        choices=EXTRAS,
    ),
    "dropout": Param(0.0, "dropout after the hidden layer", min=0.0, max=0.99),
}
GEOLOCATION_KEYS = tuple(GEOLOCATION_PARAMS)


def extra_dims(meta: Mapping[str, Any]) -> dict[str, int]:
    """Widths of the extras from a model-input ``meta.json``: region codes, env and gfv vector lengths (0 if absent)."""
    cols = meta.get("columns", {})
    width = {k: (int(cols[k]["shape"][0]) if k in cols else 0) for k in VECTOR_EXTRAS}
    return {"year": 1, "region": int(meta["n_regions"]), **width}


def build_geolocation_net(
    model_cfg: Mapping[str, Any], num_classes: int, extra_dims: Mapping[str, int]
) -> GeolocationNet:
    """Build the geolocation net of an experiment's ``[model]`` table.

    Missing geolocation keys take their defaults from :data:`GEOLOCATION_PARAMS`; the common ``[model]`` keys
    (``kind``, ``top_n``) are ignored; any other key raises.

    Args:
        model_cfg: the ``[model]`` table (see :data:`GEOLOCATION_PARAMS`).
        num_classes: number of output columns ``C`` (meta.json ``num_classes``; a latent width inside a fused net).
        extra_dims: ``{"region": n_regions, "env": E, "gfv": G}`` (``"year"``, if present, must be 1).

    Returns:
        The net (``forward(batch) -> logits [B, C]``).

    Raises:
        ValueError: unknown key, encoder or extra, or an invalid value (the message names it).
    """
    unknown = sorted(set(model_cfg) - {"kind", "top_n"} - set(GEOLOCATION_KEYS))
    if unknown:
        raise ValueError(f"model: unknown key(s) {unknown}; geolocation keys are {list(GEOLOCATION_KEYS)}")
    bad_dims = sorted(set(extra_dims) - set(EXTRAS))
    if bad_dims:
        raise ValueError(f"extra_dims: unknown extra(s) {bad_dims}; valid extras are {list(EXTRAS)}")
    if "year" in extra_dims and extra_dims["year"] != 1:
        raise ValueError(f"extra_dims['year'] must be 1 (the year is one scaled number), got {extra_dims['year']!r}")
    defaults = defaults_of(GEOLOCATION_PARAMS)
    cfg = {k: model_cfg.get(k, defaults[k]) for k in GEOLOCATION_KEYS}
    return GeolocationNet(
        num_classes,
        cfg["encoder"],
        cfg["hidden"],
        cfg["siren"],
        cfg["sh_degree"],
        cfg["n_scales"],
        cfg["min_scale_km"],
        cfg["max_scale_km"],
        cfg["coord_noise_km"],
        list(cfg["extras"]) if isinstance(cfg["extras"], (list, tuple)) else cfg["extras"],
        extra_dims.get("region", 0),
        extra_dims.get("env", 0),
        cfg["dropout"],
        gfv_dim=extra_dims.get("gfv", 0),
    )


def check_geolocation(model_cfg: Mapping[str, Any]) -> None:
    """Cross-field checks of a ``[model]`` table (at experiment load): SIREN and dropout need a hidden layer, the
    scale range must be ordered."""
    c = {**defaults_of(GEOLOCATION_PARAMS), **{k: v for k, v in model_cfg.items() if k in GEOLOCATION_PARAMS}}
    if c["siren"] and c["hidden"] == 0:
        raise ValueError("model.siren = true needs model.hidden > 0 (the SIREN body is a hidden sine layer)")
    if c["dropout"] > 0 and c["hidden"] == 0:
        raise ValueError(f"model.dropout = {c['dropout']} has no effect on the linear model (hidden = 0)")
    if c["min_scale_km"] > c["max_scale_km"]:
        raise ValueError(f"model.min_scale_km = {c['min_scale_km']} > model.max_scale_km = {c['max_scale_km']}")


def geolocation_features(model_cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """Feature sets a geolocation net reads besides location/meta: its vector extras (``env``, ``gfv``)."""
    return tuple(e for e in model_cfg.get("extras", ()) if e in VECTOR_EXTRAS)


def location_extras(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """Every extra input of a geolocation net or a ``[model.location]`` branch (the presence-only term's check: a PO
    site has none of them), ``()`` for a branch left out (``encoder = "none"``)."""
    if cfg.get("encoder", "none") == "none":
        return ()
    return tuple(cfg.get("extras", ()))


#: The ``[model.location]`` table of fused nets (tile CNN, time-series CNN): the geolocation encoder as a branch,
#: ``coordinate noise -> encoder (+ extras) -> Linear`` to ``latent`` (the geolocation MLP's first layer; the fused
#: head supplies its ReLU and output layer). ``encoder = "none"`` leaves the branch out.
LOCATION_PARAMS: dict[str, Param] = {
    "encoder": Param("none", "none (no location branch) | xy | sinusoidal | sh", choices=("none", *ENCODERS)),
    "latent": Param(256, "latent width of the location branch", min=1),
    **{
        k: GEOLOCATION_PARAMS[k]
        for k in ("sh_degree", "n_scales", "min_scale_km", "max_scale_km", "coord_noise_km", "extras")
    },
}


def location_branch(loc_cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> GeolocationNet | None:
    """The location branch of a fused net (``out_dim = latent``), or None when ``encoder = "none"``."""
    c = {**defaults_of(LOCATION_PARAMS), **dict(loc_cfg)}
    if c["encoder"] == "none":
        return None
    cfg = {k: c[k] for k in LOCATION_PARAMS if k not in ("latent",)}
    return build_geolocation_net(
        {**cfg, "hidden": 0, "siren": False, "dropout": 0.0}, int(c["latent"]), extra_dims(meta)
    )


def location_features(loc_cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """Feature sets a location branch reads besides location/meta (its vector extras)."""
    return tuple(e for e in location_extras(loc_cfg) if e in VECTOR_EXTRAS)


def check_location(loc_cfg: Mapping[str, Any]) -> None:
    """Cross-field checks of a ``[model.location]`` table."""
    c = {**defaults_of(LOCATION_PARAMS), **dict(loc_cfg)}
    if c["min_scale_km"] > c["max_scale_km"]:
        raise ValueError(f"model.location.min_scale_km = {c['min_scale_km']} > max_scale_km = {c['max_scale_km']}")
    if c["encoder"] == "none" and c["extras"]:
        raise ValueError(f"model.location.extras = {c['extras']} has no effect with encoder = 'none'")


register(
    ModelSpec(
        "geolocation",
        "DS@GT geolocation model: coordinate encoder (+ extras) -> linear / MLP / SIREN (Lightning)",
        runner="lightning",
        params=GEOLOCATION_PARAMS,
        features=geolocation_features,
        po_features=location_extras,
        build_net=lambda m, meta: build_geolocation_net(m, int(meta["num_classes"]), extra_dims(meta)),
        check=check_geolocation,
        benchmarks={"geolocation_mlp": {"encoder": "sinusoidal", "hidden": 256, "coord_noise_km": 5.0}},
    )
)
