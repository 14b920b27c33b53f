import argparse
from dataclasses import dataclass, field

import pytest

from tracklift import config as config_lib
from tracklift.errors import ConfigError


@dataclass
class Inner:
    lr: float = 1e-3
    epochs: int = 2


@dataclass
class Outer:
    name: str = field(default="a", metadata={"help": "a name"})
    flag: bool = False
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    path: str | None = None
    inner: Inner = field(default_factory=Inner)


def parse(argv):
    p = argparse.ArgumentParser()
    config_lib.add_arguments(p, Outer)
    return config_lib.from_args(Outer, p.parse_args(argv))


def test_defaults():
    assert parse([]) == Outer()


def test_flags_override_yaml(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("name: fromyaml\ninner:\n  lr: 0.5\n  epochs: 7\n")
    cfg = parse(
        ["--config", str(y), "--inner.epochs", "9", "--flag", "true", "--sizes", "3,4", "--path", "none"]
    )
    assert cfg.name == "fromyaml" and cfg.inner.lr == 0.5 and cfg.inner.epochs == 9
    assert cfg.flag is True and cfg.sizes == [3, 4] and cfg.path is None


def test_unknown_yaml_key_is_named(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("nmae: typo\n")
    with pytest.raises(ConfigError, match="unknown key.*nmae"):
        parse(["--config", str(y)])


def test_bad_type_is_rejected():
    with pytest.raises(SystemExit):
        parse(["--inner.epochs", "many"])
