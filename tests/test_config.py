"""Experiment config: defaults in one place, unknown keys are an error naming file and key."""

import pytest

from glc.config import DEFAULTS, ConfigError, config_hash, load_experiment, resolve


def test_every_experiment_file_resolves():
    from glc.config import TASKS_DIR

    files = sorted(TASKS_DIR.glob("*.toml"))
    assert files, "tasks/ must hold at least one experiment"
    for f in files:
        cfg = load_experiment(str(f))
        assert set(cfg) == set(DEFAULTS)
        assert cfg["name"] == f.stem


def test_unknown_key_raises_with_path(tmp_path):
    p = tmp_path / "typo.toml"
    p.write_text('[model]\nknd = "frequency"\n')
    with pytest.raises(ConfigError, match=r"typo\.toml: unknown key 'model\.knd'"):
        load_experiment(str(p))


def test_table_type_checked_and_hash_changes():
    with pytest.raises(ConfigError, match="'model' must be a table"):
        resolve({"model": 3})
    a, b = resolve({}), resolve({"seed": 1})
    assert config_hash(a) != config_hash(b) and config_hash(a) == config_hash(resolve({}))


def test_unknown_experiment_lists_known_ones():
    with pytest.raises(ConfigError, match="known experiments: .*frequency"):
        load_experiment("no-such-experiment")
