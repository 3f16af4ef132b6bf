"""The spark-img2ds command line: flags, YAML, and one-line errors before Spark starts."""

from __future__ import annotations

import math
import subprocess
import sysconfig
from pathlib import Path
from types import SimpleNamespace

import pytest

from spark_img2ds.cli import build_parser, config_from_args, main, stop_before_exit
from spark_img2ds.config import Config, option_fields
from spark_img2ds.errors import ConfigError

SCRIPT = Path(sysconfig.get_path("scripts")) / "spark-img2ds"


# -- flags --------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["urls.txt", "--image_size", "128"],
        ["urls.txt", "--image_size=128"],
        ["urls.txt", "--image-size", "128"],
        ["urls.txt", "--image-size=128"],
        ["--image_size", "128", "urls.txt"],
    ],
)
def test_flag_spellings(argv):
    cfg = config_from_args(argv)
    assert cfg.image_size == 128
    assert cfg.url_list == "urls.txt"


def test_no_flags_gives_the_defaults():
    assert config_from_args(["urls.txt"]) == Config(url_list="urls.txt")


def test_help_lists_every_option_with_its_text(capsys):
    """--help prints (argparse formats help with %, and an option's text may hold a percentage)."""
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["--help"])
    assert stop.value.code == 0
    shown = "".join(capsys.readouterr().out.split())  # argparse re-wraps lines, also at hyphens
    for f in option_fields():
        assert f"--{f.name}" in shown
        assert "".join(f.metadata["help"].split()) in shown, f.name


def test_every_option_has_an_underscore_and_a_dash_flag():
    parser = build_parser()
    for f in option_fields():
        for flag in {f"--{f.name}", f"--{f.name.replace('_', '-')}"}:
            ns = vars(parser.parse_args([f"{flag}=v"]))
            assert ns == {f.name: "v"}, flag


@pytest.mark.parametrize("flag", ["--resize_only_if_bigger", "--resize-only-if-bigger"])
def test_bool_flag_alone_is_true(flag):
    assert config_from_args(["u.txt", flag]).resize_only_if_bigger is True


def test_bool_flag_followed_by_another_flag_is_true():
    cfg = config_from_args(["u.txt", "--skip_reencode", "--image_size", "64", "--allow-private-networks"])
    assert cfg.skip_reencode is True
    assert cfg.allow_private_networks is True
    assert cfg.image_size == 64


@pytest.mark.parametrize(
    "flag, expected",
    [
        ("--extract_exif=false", False),
        ("--extract-exif=False", False),
        ("--extract_exif=0", False),
        ("--extract_exif=true", True),
    ],
)
def test_bool_flag_with_value(flag, expected):
    assert config_from_args(["u.txt", flag]).extract_exif is expected


def test_bool_flag_with_separate_value():
    assert config_from_args(["u.txt", "--extract_exif", "false"]).extract_exif is False


def test_bool_flag_with_bad_value_is_refused():
    with pytest.raises(ConfigError, match="extract_exif must be true or false"):
        config_from_args(["u.txt", "--extract_exif=perhaps"])


def test_typed_flags_are_coerced():
    cfg = config_from_args(
        [
            "u.txt",
            "--timeout=2.5",
            "--max_image_area",
            "inf",
            "--save_additional_columns",
            "a,b",
            "--disallowed_header_directives=[]",
            "--caption_col=none",
            "--compute_hash",
            "md5",
            "--storage_options",
            '{"anon": true}',
            "--output-format",
            "webdataset",
        ]
    )
    assert cfg.timeout == 2.5
    assert cfg.max_image_area == math.inf
    assert cfg.save_additional_columns == ["a", "b"]
    assert cfg.directives == frozenset()
    assert cfg.caption_col is None
    assert cfg.compute_hash == "md5"
    assert cfg.storage_options == {"anon": True}
    assert cfg.output_format == "webdataset"


def test_negative_number_is_taken_as_a_value():
    with pytest.raises(ConfigError, match="image_size must be a positive integer, got -5"):
        config_from_args(["u.txt", "--image_size", "-5"])


# -- url list -----------------------------------------------------------------


@pytest.mark.parametrize("argv", [["urls.txt"], ["--url_list", "urls.txt"], ["--url-list=urls.txt"]])
def test_url_list_positionally_or_by_flag(argv):
    assert config_from_args(argv).url_list == "urls.txt"


def test_url_list_given_twice_is_refused():
    with pytest.raises(ConfigError, match="give the url list once"):
        config_from_args(["a.txt", "--url_list", "b.txt"])


def test_missing_url_list_is_refused():
    with pytest.raises(ConfigError, match="url_list is required"):
        config_from_args(["--image_size", "64"])


def test_two_positionals_are_refused():
    with pytest.raises(ConfigError, match="unrecognized arguments: b.txt"):
        config_from_args(["a.txt", "b.txt"])


# -- YAML ---------------------------------------------------------------------


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_yaml_file_sets_options(tmp_path):
    cfg_file = write(
        tmp_path / "job.yaml",
        "url_list: urls.parquet\n"
        "input_format: parquet\n"
        "image_size: 64\n"
        "output_format: webdataset\n"
        "caption_col: caption\n"
        "save_additional_columns: [width_hint, lang]\n"
        "max_aspect_ratio: .inf\n"
        "extract_exif: false\n"
        "storage_options:\n"
        "  client_kwargs:\n"
        "    endpoint_url: http://minio:9000\n",
    )
    cfg = config_from_args(["--config", cfg_file])
    assert cfg.url_list == "urls.parquet"
    assert cfg.input_format == "parquet"
    assert cfg.image_size == 64
    assert cfg.output_format == "webdataset"
    assert cfg.caption_col == "caption"
    assert cfg.save_additional_columns == ["width_hint", "lang"]
    assert cfg.max_aspect_ratio == math.inf
    assert cfg.extract_exif is False
    assert cfg.storage_options == {"client_kwargs": {"endpoint_url": "http://minio:9000"}}
    assert cfg.thread_count == 256  # untouched options keep their defaults


def test_flags_override_yaml(tmp_path):
    cfg_file = write(
        tmp_path / "job.yaml",
        "url_list: from_yaml.txt\nimage_size: 64\noutput_format: webdataset\nextract_exif: true\n",
    )
    cfg = config_from_args(["--image_size", "128", "--config", cfg_file, "--extract_exif=false"])
    assert cfg.image_size == 128
    assert cfg.extract_exif is False
    assert cfg.output_format == "webdataset"
    assert cfg.url_list == "from_yaml.txt"


def test_positional_url_list_overrides_yaml(tmp_path):
    cfg_file = write(tmp_path / "job.yaml", "url_list: from_yaml.txt\n")
    assert config_from_args(["--config", cfg_file, "given.txt"]).url_list == "given.txt"


def test_yaml_string_values_are_coerced(tmp_path):
    cfg_file = write(tmp_path / "job.yaml", "url_list: u.txt\nimage_size: '32'\nsave_additional_columns: a,b\n")
    cfg = config_from_args(["--config", cfg_file])
    assert cfg.image_size == 32
    assert cfg.save_additional_columns == ["a", "b"]


def test_empty_yaml_file_is_no_options(tmp_path):
    cfg_file = write(tmp_path / "empty.yaml", "")
    assert config_from_args(["--config", cfg_file, "u.txt"]) == Config(url_list="u.txt")


def test_yaml_unknown_key_is_refused(tmp_path):
    cfg_file = write(tmp_path / "job.yaml", "url_list: u.txt\nimage_sise: 64\n")
    with pytest.raises(ConfigError, match=r"unknown option\(s\): image_sise"):
        config_from_args(["--config", cfg_file])


def test_yaml_bad_value_is_refused_naming_the_option(tmp_path):
    cfg_file = write(tmp_path / "job.yaml", "url_list: u.txt\nresize_mode: stretch\n")
    with pytest.raises(ConfigError, match="resize_mode must be one of"):
        config_from_args(["--config", cfg_file])


@pytest.mark.parametrize("text", ["- url_list\n- image_size\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping_is_refused(tmp_path, text):
    cfg_file = write(tmp_path / "job.yaml", text)
    with pytest.raises(ConfigError, match="must hold a mapping of option names to values"):
        config_from_args(["--config", cfg_file, "u.txt"])


def test_invalid_yaml_is_refused(tmp_path):
    cfg_file = write(tmp_path / "job.yaml", "image_size: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML") as info:
        config_from_args(["--config", cfg_file, "u.txt"])
    assert "\n" not in str(info.value)


def test_missing_yaml_file_is_refused(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="cannot read config file .*nope.yaml"):
        config_from_args(["--config", str(missing), "u.txt"])


def test_yaml_path_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        config_from_args(["--config", str(tmp_path), "u.txt"])


# -- main(): one line on stderr, exit 2, nothing created ---------------------------


def spark_context():
    from pyspark import SparkContext

    return SparkContext._active_spark_context


BAD_ARGV = {
    "negative_size": ["--image_size", "-5"],
    "zero_size": ["--image_size=0"],
    "text_size": ["--image-size", "abc"],
    "zero_threads": ["--thread_count", "0"],
    "bad_resize_mode": ["--resize_mode", "stretch"],
    "png_quality": ["--encode_format", "png", "--encode_quality", "10"],
    "crc32": ["--compute_hash", "crc32"],
    "unknown_format": ["--output_format", "tiff"],
    "wandb": ["--enable_wandb"],
    "reserved_column": ["--save_additional_columns", "url"],
    "bad_json": ["--storage_options", "{nope"],
    "unknown_flag": ["--no_such_flag", "1"],
    "missing_value": ["--image_size"],
    "bad_bool": ["--extract_exif=maybe"],
}


@pytest.mark.parametrize("extra", list(BAD_ARGV.values()), ids=list(BAD_ARGV))
def test_main_bad_value_is_one_line_and_exit_2(tmp_path, capsys, extra):
    out_dir = tmp_path / "out"
    before = spark_context()
    code = main(["urls.txt", "--output_folder", str(out_dir), *extra])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("spark-img2ds: error: ")
    assert captured.err.endswith("\n")
    assert captured.err.count("\n") == 1, captured.err
    assert not out_dir.exists()
    assert spark_context() is before


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--image_size", "-5"], "image_size"),
        (["--no_such_flag", "1"], "unrecognized arguments: --no_such_flag 1"),
        (["--image_size"], "--image_size"),
        (["--output_format", "tiff"], "output_format must be one of webdataset"),
        (["--enable_wandb"], "_summary.json"),
        (["--storage_options", "{nope"], "storage_options is not valid JSON"),
    ],
)
def test_main_error_names_the_problem(tmp_path, capsys, extra, fragment):
    assert main(["urls.txt", "--output_folder", str(tmp_path / "out"), *extra]) == 2
    assert fragment in capsys.readouterr().err


def test_main_missing_url_list(tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["--output_folder", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spark-img2ds: error: url_list is required")
    assert err.count("\n") == 1
    assert not out_dir.exists()


def test_main_url_list_twice(tmp_path, capsys):
    assert main(["a.txt", "--url_list", "b.txt", "--output_folder", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        "spark-img2ds: error: give the url list once: either as an argument or with --url_list\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("unknown_key.yaml", "image_sise: 3\n", "unknown option(s): image_sise"),
        ("list.yaml", "- a\n- b\n", "config file {} must hold a mapping"),
        ("broken.yaml", "a: [\n", "config file {} is not valid YAML"),
    ],
)
def test_main_bad_yaml_is_one_line(tmp_path, capsys, name, text, message):
    cfg_file = write(tmp_path / name, text)
    out_dir = tmp_path / "out"
    assert main(["--config", cfg_file, "urls.txt", "--output_folder", str(out_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("spark-img2ds: error: " + message.format(cfg_file))
    assert captured.err.count("\n") == 1
    assert not out_dir.exists()


def test_main_missing_yaml_is_one_line(tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["--config", str(tmp_path / "nope.yaml"), "urls.txt", "--output_folder", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spark-img2ds: error: cannot read config file")
    assert err.count("\n") == 1
    assert not out_dir.exists()


def test_main_non_utf8_yaml_is_one_line(tmp_path, capsys):
    cfg_file = tmp_path / "latin1.yaml"
    cfg_file.write_bytes("caption_col: l\xe9gende\n".encode("latin-1"))
    assert main(["--config", str(cfg_file), "urls.txt", "--output_folder", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("spark-img2ds: error: config file")


@pytest.mark.parametrize("text", ["yes: 1\n", "123: 1\n"])
def test_main_yaml_non_string_key_is_one_line(tmp_path, capsys, text):
    cfg_file = write(tmp_path / "job.yaml", text)
    assert main(["--config", cfg_file, "urls.txt", "--output_folder", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("spark-img2ds: error: unknown option")


# -- the installed console script -------------------------------------------------


def test_console_script_bad_value_is_one_line_without_traceback(tmp_path):
    assert SCRIPT.exists(), SCRIPT
    out_dir = tmp_path / "out"
    proc = subprocess.run(
        [str(SCRIPT), "--image_size", "-5", "x.txt", "--output_folder", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("spark-img2ds: error: image_size must be a positive integer")
    assert proc.stdout == ""
    assert not out_dir.exists()


class _StoppedSession:
    """What getActiveSession can hand back when its context was stopped already: no JVM side."""

    def __init__(self) -> None:
        self.sparkContext = SimpleNamespace(_jsc=None)
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_a_session_without_its_jvm_side_is_stopped_the_ordinary_way():
    session = _StoppedSession()
    stop_before_exit(session)
    assert session.stopped
