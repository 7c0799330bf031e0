"""Experiment config: one typed schema, every value checked at load, errors naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from glc.config import SCHEMA, ConfigError, config_hash, load_experiment, resolve, tasks_dir
from glc.models.registry import get_model, model_kinds


def test_every_experiment_file_resolves():
    files = sorted(tasks_dir().glob("*.toml"))
    assert files, "tasks/ must hold at least one experiment"
    for f in files:
        cfg = load_experiment(str(f))
        assert set(cfg) == set(SCHEMA)
        assert cfg["name"] == f.stem
        spec = get_model(cfg["model"]["kind"])
        assert set(cfg["model"]) == {"kind", "top_n", *spec.params}, f"{f.name}: [model] holds exactly its kind's keys"


def test_unknown_key_raises_with_path(tmp_path: Path):
    p = tmp_path / "typo.toml"
    p.write_text('[model]\nknd = "frequency"\n')
    with pytest.raises(ConfigError, match=r"typo\.toml: unknown key 'model\.knd'"):
        load_experiment(str(p))


def test_table_type_checked_and_hash_changes():
    with pytest.raises(ConfigError, match="'model' must be a table"):
        resolve({"model": 3})
    with pytest.raises(ConfigError, match="'train' must be a table"):
        resolve({"train": 3})
    a, b = resolve({}), resolve({"seed": 1})
    assert config_hash(a) != config_hash(b) and config_hash(a) == config_hash(resolve({}))


def test_unknown_experiment_lists_known_ones():
    with pytest.raises(ConfigError, match="known experiments: .*frequency"):
        load_experiment("no-such-experiment")


@pytest.mark.parametrize(
    "toml,match",
    [
        ('[model]\nkind = "knn"\nk = "ten"\n', r"bad\.toml: model\.k = 'ten': expected an integer"),
        ('[model]\nkind = "knn"\nk = 2.9\n', r"bad\.toml: model\.k = 2\.9: expected an integer .*never rounded"),
        ('[model]\nkind = "knn"\nk = 0\n', r"bad\.toml: model\.k = 0: must be >= 1"),
        ('[model]\nkind = "knnn"\n', r"bad\.toml: model\.kind = 'knnn': not a known model; valid kinds are \[.*'knn'"),
        (
            '[decoder]\nkind = "expected-f1"\n',
            r"bad\.toml: decoder\.kind = 'expected-f1': not a valid value; valid values are .*expected_f1",
        ),
        ('[decoder]\nkind = "counts"\n', r"decoder\.kind = 'counts': not a valid value; valid values are .*'count'"),
        ('[model]\nkind = "blend"\nexperiments = ["a"]\nmodels = ["knn10"]\n', r"give exactly one"),
        ('[model]\nkind = "blend"\nexperiments = ["a", "b"]\nweights = [0.6, 0.6]\n', r"must sum to 1"),
        ('[train]\noptimizer = "adam"\n', r"train\.optimizer = 'adam': not a valid value"),
        (
            '[train.loss]\nkind = "focal"\n',
            r"bad\.toml: train\.loss\.kind = 'focal': not a valid value; valid values are \['asl'",
        ),
        ("[train]\nlr = 0\n", r"bad\.toml: train\.lr = 0\.0: must be > 0"),
        ('[train]\nmax_epochs = "5"\n', r"train\.max_epochs = '5': expected an integer"),
        ("[decoder]\ncompare = 1\n", r"decoder\.compare = 1: expected true or false"),
        (
            '[model]\nkind = "geolocation"\nextras = ["elevation"]\n',
            r"model\.extras\[0\] = 'elevation': not a valid value",
        ),
        ('[model]\nkind = "geolocation"\nextras = "env"\n', r"model\.extras = 'env': expected a list of str"),
        (
            '[model]\nkind = "geolocation"\nextras = ["env", "env"]\n',
            r"model\.extras = \['env', 'env'\]: an item is listed twice",
        ),
        (
            '[model]\nkind = "geolocation"\nhidden = 0\nsiren = true\n',
            r"bad\.toml: model\.siren = true needs model\.hidden > 0",
        ),
        (
            '[model]\nkind = "knn"\nencoder = "xy"\n',
            r"unknown key 'model\.encoder'; valid keys here are \['k', 'kind', 'top_n'\]",
        ),
        ("[validation]\nval_fraction = 1.5\n", r"validation\.val_fraction = 1\.5: must be <= 0\.9"),
        (
            '[inputs]\nshuffle = ["patch_dct"]\n',
            r"inputs\.shuffle = \['patch_dct'\]: model\.kind='frequency' .* does not read \['patch_dct'\]",
        ),
        ('[wandb]\nmode = "cloud"\n', r"wandb\.mode = 'cloud': not a valid value"),
    ],
)
def test_bad_values_are_refused_at_load_naming_file_and_key(tmp_path: Path, toml: str, match: str):
    p = tmp_path / "bad.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError, match=match):
        load_experiment(str(p))


def test_values_keep_their_type():
    cfg = resolve({"model": {"kind": "knn", "k": 7}, "train": {"lr": 1, "max_epochs": 3}})
    assert cfg["model"]["k"] == 7 and type(cfg["model"]["k"]) is int
    assert cfg["train"]["lr"] == 1.0 and type(cfg["train"]["lr"]) is float  # a float setting accepts an int
    assert type(cfg["train"]["max_epochs"]) is int


def test_every_kind_resolves_with_its_defaults():
    for kind in model_kinds():
        cfg = resolve({"model": {"kind": kind}})
        assert cfg["model"]["kind"] == kind and cfg["model"]["top_n"] == 256


def test_checkpoint_minutes_is_never_hashed() -> None:
    """How often a run checkpoints never changes the trained model: any value keeps the artifacts' hash (and so
    resumes the same run), and a config without the key (built before it existed) has that hash too."""
    from glc.config import config_hash, load_experiment, model_key

    cfg = load_experiment("tile-cnn")
    assert (
        cfg["train"]["checkpoint_minutes"] == 30.0
        and load_experiment("inception")["train"]["checkpoint_minutes"] == 15.0
    )
    other = {**cfg, "train": {**cfg["train"], "checkpoint_minutes": 5.0}}
    legacy = {**cfg, "train": {k: v for k, v in cfg["train"].items() if k != "checkpoint_minutes"}}
    assert config_hash(other) == config_hash(cfg) == config_hash(legacy) and model_key(other) == model_key(cfg)
    with pytest.raises(ConfigError, match="checkpoint_minutes"):
        resolve({"train": {"checkpoint_minutes": -1}})


def test_keys_added_later_leave_the_hash_unchanged_at_their_defaults() -> None:
    from glc.config import UNHASHED_DEFAULTS, config_hash, load_experiment

    cfg = load_experiment("geolocation-asl")
    assert cfg["train"]["devices"] == 1 and cfg["train"]["strategy"] == "auto"
    legacy = {k: dict(v) if isinstance(v, dict) else v for k, v in cfg.items()}
    for section, key in UNHASHED_DEFAULTS:
        legacy[section].pop(key)
    assert config_hash(cfg) == config_hash(legacy)  # the hash an artifact built before the keys existed carries
    two = {**cfg, "train": {**cfg["train"], "devices": 2}}
    assert config_hash(two) != config_hash(cfg)


def test_feature_sets_an_edition_lacks_are_refused_when_the_experiment_is_loaded() -> None:
    """GLC25 ships no full GeoTIFFs and no 128 px JPEG patches: experiments reading them fail at load, naming the
    feature set and the edition; the others load unchanged."""
    from glc.config import ConfigError, load_experiment
    from glc.data.layout import EDITIONS

    glc25 = EDITIONS["glc25"]
    with pytest.raises(
        ConfigError,
        match=r"tile-cnn-rasters\.toml: experiment 'tile-cnn-rasters' reads feature set\(s\) "
        r"'raster_.*full-extent environmental GeoTIFFs.*which GLC25 does not ship",
    ):
        load_experiment("tile-cnn-rasters", glc25)
    with pytest.raises(ConfigError, match="'patch_raw' \\(needs GLC24's 128 px uint8 JPEG patches\\)"):
        load_experiment("fusion-paper", glc25)
    with pytest.raises(
        ConfigError, match=r"glc2020-fusion\.toml: member experiment 'inception' is refused: .*GLC25 does not ship"
    ):
        load_experiment("glc2020-fusion", glc25)
    with pytest.raises(ConfigError, match=r"blend\.toml: member experiment 'tile-cnn-rasters' is refused"):
        load_experiment("blend", glc25)
    for name in ("knn", "gbm", "fusion", "tile-cnn", "timeseries-cnn", "rf"):
        on_glc25 = load_experiment(name, glc25)
        assert (
            on_glc25["validation"].pop("scheme") == "test_like"
        )  # GLC25's default hold-out (Edition.validation_scheme)
        base = load_experiment(name)
        base["validation"].pop("scheme")
        assert on_glc25 == base
    load_experiment("tile-cnn-rasters", EDITIONS["glc24"])


def test_an_experiment_whose_encoder_reads_what_the_edition_lacks_is_refused(tmp_path) -> None:
    """tile2vec and SatCLIP pretrain on raster tiles: the experiments reading their embeddings are refused on GLC25
    when they load (naming the encoder, its file and the feature sets), and so is pretraining the encoder itself on a
    GLC25 data root; on GLC24 all load."""
    from glc.config import ConfigError, load_experiment
    from glc.data.layout import EDITIONS
    from glc.tasks.pretrain import PretrainEncoder

    glc25 = EDITIONS["glc25"]
    for name, encoder in (
        ("tile2vec", "tile2vec"),
        ("tile2vec-untrained", "tile2vec-untrained"),
        ("geolocation-satclip", "satclip"),
    ):
        with pytest.raises(
            ConfigError,
            match=rf"{name}\.toml: its encoder '{encoder}' is refused: .*encoders/"
            rf"{encoder}\.toml: encoder '{encoder}' reads feature set\(s\) 'raster_landcover'",
        ):
            load_experiment(name, glc25)
        load_experiment(name, EDITIONS["glc24"])
    task = PretrainEncoder(
        data_root=str(tmp_path / "synthetic" / "glc25-tiny-seed0"), out_root=str(tmp_path / "o"), encoder="satclip"
    )
    with pytest.raises(ConfigError, match=r"satclip\.toml: encoder 'satclip' reads .*which GLC25 does not ship"):
        _ = task.cfg
    assert (
        PretrainEncoder(
            data_root=str(tmp_path / "synthetic" / "tiny-seed0"), out_root=str(tmp_path / "o"), encoder="satclip"
        ).cfg["encoder"]["kind"]
        == "satclip"
    )


def test_an_editions_validation_scheme_is_the_default_a_file_can_override(tmp_path) -> None:
    import dataclasses

    from glc.config import config_hash, load_experiment
    from glc.data.layout import EDITIONS

    shifted = dataclasses.replace(EDITIONS["glc25"], validation_scheme="test_like")
    assert load_experiment("knn", shifted)["validation"]["scheme"] == "test_like"
    assert config_hash(load_experiment("knn", shifted)) != config_hash(load_experiment("knn"))
    assert load_experiment("knn", EDITIONS["glc24"]) == load_experiment("knn")
    own = tmp_path / "own.toml"
    own.write_text('name = "own"\n[model]\nkind = "knn"\n[validation]\nscheme = "blocks"\nblock_km = 20.0\n')
    cfg = load_experiment(str(own), shifted)
    assert (cfg["validation"]["scheme"], cfg["validation"]["block_km"]) == ("blocks", 20.0)
