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


@dataclass
class WithOptional:
    name: str = "a"
    extra: Inner | None = field(default=None, metadata={"help": "optional section"})


def parse_optional(argv):
    p = argparse.ArgumentParser()
    config_lib.add_arguments(p, WithOptional)
    return config_lib.from_args(WithOptional, p.parse_args(argv))


def test_optional_section_from_flags_and_yaml(tmp_path):
    assert parse_optional([]).extra is None  # off by default
    # any of its flags turns it on, with the section's own defaults for the rest
    assert parse_optional(["--extra.epochs", "5"]).extra == Inner(lr=1e-3, epochs=5)
    y = tmp_path / "c.yaml"
    y.write_text("extra:\n  lr: 0.25\n")
    assert parse_optional(["--config", str(y), "--extra.epochs", "3"]).extra == Inner(lr=0.25, epochs=3)
    y.write_text("extra: null\n")
    assert parse_optional(["--config", str(y)]).extra is None
    y.write_text("extra:\n  lrr: 1\n")
    with pytest.raises(ConfigError, match="extra.*lrr"):
        parse_optional(["--config", str(y)])
    p = argparse.ArgumentParser()
    config_lib.add_arguments(p, WithOptional)
    assert "--extra.lr" in p.format_help() and "turns extra on" in p.format_help()


def test_serve_config_clip_is_the_openvocab_config(tmp_path):
    from tracklift.openvocab.config import ClipConfig
    from tracklift.serving.config import ServeConfig

    p = argparse.ArgumentParser()
    config_lib.add_arguments(p, ServeConfig)
    assert config_lib.from_args(ServeConfig, p.parse_args([])).clip is None
    cfg = config_lib.from_args(ServeConfig, p.parse_args(["--clip.crop-scales", "1,2", "--clip.model", "M"]))
    assert cfg.clip == ClipConfig(model="M", crop_scales=(1.0, 2.0))
    assert ServeConfig.from_dict(cfg.to_dict()) == cfg  # the dict that travels to the replicas
