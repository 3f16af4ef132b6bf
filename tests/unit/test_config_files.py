"""YAML config files: the committed schema is the generated one, and every example is valid and loads."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from spark_img2ds.cli import config_from_args, main
from spark_img2ds.errors import ConfigError
from spark_img2ds.schema import config_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "configs").glob("*.yaml"))


def test_the_committed_schema_is_the_generated_one(capsys):
    assert json.loads((ROOT / "docs" / "config.schema.json").read_text()) == config_schema()
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()


def test_the_schema_knows_every_option_and_rejects_others():
    validator = jsonschema.Draft202012Validator(config_schema())
    assert not list(validator.iter_errors({"image_size": 128, "resize_mode": "border", "pin_cpus": "auto"}))
    assert list(validator.iter_errors({"image_sise": 128}))  # unknown key
    assert list(validator.iter_errors({"resize_mode": "stretch"}))  # not a choice
    assert list(validator.iter_errors({"image_size": "big"}))  # wrong type


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_is_valid_and_builds_a_config(path):
    data = yaml.safe_load(path.read_text())
    jsonschema.validate(data, config_schema())
    cfg = config_from_args(["--config", str(path)])
    assert cfg.url_list == data["url_list"] and cfg.output_format == data["output_format"]
    assert config_from_args(["--config", str(path), "--image_size", "64"]).image_size == 64  # flags override


def test_there_are_the_three_examples_the_docs_list():
    names = {p.name for p in EXAMPLES}
    assert names == {"laion_parquet_s3.yaml", "cc3m_tsv.yaml", "local.yaml"}
    docs = (ROOT / "docs" / "config.md").read_text()
    assert all(f"`{n}`" in docs for n in names)


def test_an_unknown_key_in_a_file_names_the_closest_option(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("url_list: u.txt\nimage_sise: 128\n")
    with pytest.raises(ConfigError, match=r"image_sise \(did you mean image_size\?\)"):
        config_from_args(["--config", str(path)])
