"""Config: img2dataset-compatible defaults, validation, string coercion and redaction."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from spark_img2ds.config import Config, option_fields
from spark_img2ds.errors import ConfigError, Img2dsError

# img2dataset 1.47 download() keyword defaults (url_list has none; distributor is
# deliberately "pyspark" here, img2dataset's wandb_project is tested separately).
IMG2DATASET_DEFAULTS = {
    "image_size": 256,
    "output_folder": "images",
    "processes_count": 1,
    "resize_mode": "border",
    "resize_only_if_bigger": False,
    "upscale_interpolation": "lanczos",
    "downscale_interpolation": "area",
    "encode_quality": 95,
    "encode_format": "jpg",
    "skip_reencode": False,
    "output_format": "files",
    "input_format": "txt",
    "url_col": "url",
    "caption_col": None,
    "bbox_col": None,
    "thread_count": 256,
    "number_sample_per_shard": 10000,
    "extract_exif": True,
    "save_additional_columns": None,
    "timeout": 10,
    "enable_wandb": False,
    "oom_shard_count": 5,
    "compute_hash": "sha256",
    "verify_hash": None,
    "subjob_size": 1000,
    "retries": 0,
    "disable_all_reencoding": False,
    "min_image_size": 0,
    "max_image_area": math.inf,
    "max_aspect_ratio": math.inf,
    "incremental_mode": "incremental",
    "max_shard_retry": 1,
    "user_agent_token": None,
    "disallowed_header_directives": None,
    "ignore_ssl_certificate": False,
}
PROJECT_DEFAULTS = {"master": None, "storage_options": {}, "allow_private_networks": False, "stall_timeout": 0}


def make(**options) -> Config:
    return Config(url_list="urls.txt", **options)


def refused(match: str, **options) -> ConfigError:
    with pytest.raises(ConfigError, match=match) as info:
        make(**options)
    return info.value


# -- defaults ---------------------------------------------------------------


@pytest.mark.parametrize("name, expected", sorted({**IMG2DATASET_DEFAULTS, **PROJECT_DEFAULTS}.items()))
def test_default_matches_img2dataset(name, expected):
    value = getattr(make(), name)
    assert value == expected
    assert type(value) is type(expected)


def test_default_directives_are_img2dataset_opt_out_list():
    assert make().directives == frozenset({"noai", "noimageai", "noindex", "noimageindex", "noml", "tdm-reservation"})


def test_url_list_is_the_only_required_option():
    cfg = Config.from_dict({"url_list": "urls.txt"})
    assert cfg.url_list == "urls.txt"
    assert cfg == make()


def test_storage_options_default_is_not_shared_between_configs():
    assert make().storage_options is not make().storage_options


def test_every_img2dataset_download_keyword_but_wandb_project_is_an_option():
    names = {f.name for f in option_fields()}
    assert set(IMG2DATASET_DEFAULTS) | {"url_list", "distributor"} <= names
    cfg = Config.from_dict({"url_list": "u.txt", **IMG2DATASET_DEFAULTS, "distributor": "multiprocessing"})
    assert cfg.image_size == 256


def test_img2dataset_wandb_project_keyword_is_accepted():
    cfg = Config.from_dict({"url_list": "u.txt", "enable_wandb": False, "wandb_project": "img2dataset"})
    assert cfg.enable_wandb is False


def test_config_is_frozen():
    cfg = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.image_size = 1


# -- validation -------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "256", None, 65501])
def test_bad_image_size_is_refused(bad):
    refused("image_size", image_size=bad)


def test_image_size_string_that_is_not_a_number_is_refused_by_from_dict():
    with pytest.raises(ConfigError, match=r"image_size must be an integer, got 'abc'"):
        Config.from_dict({"url_list": "u.txt", "image_size": "abc"})


def test_config_error_is_a_value_error_and_an_img2ds_error():
    err = refused("thread_count", thread_count=0)
    assert isinstance(err, ValueError)
    assert isinstance(err, Img2dsError)
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    "name, bad",
    [
        ("thread_count", 0),
        ("processes_count", 0),
        ("number_sample_per_shard", 0),
        ("oom_shard_count", 0),
        ("oom_shard_count", 13),
        ("retries", -1),
        ("max_shard_retry", -1),
        ("min_image_size", -1),
        ("subjob_size", -1),
        ("max_image_area", 0),
        ("max_aspect_ratio", -2.0),
        ("max_aspect_ratio", math.nan),
        ("timeout", 0),
        ("timeout", -3),
        ("timeout", math.nan),
        ("timeout", "10"),
        ("stall_timeout", -1),
        ("stall_timeout", 86401),
        ("stall_timeout", math.nan),
        ("stall_timeout", True),
    ],
)
def test_bad_numbers_are_refused_naming_the_option(name, bad):
    refused(name, **{name: bad})


@pytest.mark.parametrize(
    "name, bad",
    [
        ("resize_mode", "stretch"),
        ("encode_format", "gif"),
        ("output_format", "csv"),
        ("input_format", "xml"),
        ("incremental_mode", "append"),
        ("upscale_interpolation", "magic"),
        ("downscale_interpolation", "AREA"),
    ],
)
def test_unknown_choice_is_refused_listing_the_choices(name, bad):
    err = refused(rf"{name} must be one of .*{bad!r}", **{name: bad})
    assert "one of" in str(err)


@pytest.mark.parametrize("name", ["resize_only_if_bigger", "extract_exif", "skip_reencode", "allow_private_networks"])
@pytest.mark.parametrize("bad", [1, "true", None])
def test_bool_options_need_real_bools(name, bad):
    refused(rf"{name} must be true or false", **{name: bad})


def test_png_quality_is_a_compression_level():
    refused(r"encode_quality for png is a compression level 0-9, got 10", encode_format="png", encode_quality=10)
    assert make(encode_format="png", encode_quality=9).encode_quality == 9
    assert make(encode_format="png", encode_quality=0).encode_quality == 0


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
@pytest.mark.parametrize("bad", [101, -1, 95.0])
def test_jpg_and_webp_quality_is_0_to_100(fmt, bad):
    refused(rf"encode_quality for {fmt} must be 0-100", encode_format=fmt, encode_quality=bad)


def test_webp_quality_100_is_accepted():
    assert make(encode_format="webp", encode_quality=100).encode_quality == 100


@pytest.mark.parametrize("bad", ["crc32", "SHA256", ""])
def test_unknown_compute_hash_is_refused(bad):
    refused("compute_hash must be one of md5, sha256, sha512 or none", compute_hash=bad)


@pytest.mark.parametrize("good", ["md5", "sha256", "sha512", None])
def test_known_compute_hash_is_accepted(good):
    assert make(compute_hash=good).compute_hash == good


@pytest.mark.parametrize("reserved", ["url", "key", "status", "caption", "sha256", "exif"])
def test_reserved_additional_column_is_refused(reserved):
    err = refused("save_additional_columns may not use reserved column names", save_additional_columns=["a", reserved])
    assert reserved in str(err)


def test_duplicated_additional_column_is_refused():
    refused("save_additional_columns lists a column twice", save_additional_columns=["a", "b", "a"])


def test_additional_column_repeating_url_col_or_caption_col_is_refused():
    refused("save_additional_columns must not repeat url_col", url_col="link", save_additional_columns=["link"])
    refused("save_additional_columns must not repeat caption_col", caption_col="txt", save_additional_columns=["txt"])


@pytest.mark.parametrize("bad", ["a", ["a", ""], ["a", 3], [["a"]]])
def test_additional_columns_must_be_a_list_of_names(bad):
    refused("save_additional_columns must be a list of non-empty strings", save_additional_columns=bad)


def test_additional_columns_are_kept_in_order():
    cfg = make(save_additional_columns=["b", "a"])
    assert cfg.additional_columns == ["b", "a"]
    assert make().additional_columns == []


@pytest.mark.parametrize("key", [123, True])
def test_non_string_option_name_is_a_config_error(key):
    with pytest.raises(ConfigError, match="unknown option"):
        Config.from_dict({"url_list": "u.txt", key: 1})


@pytest.mark.parametrize("values", [{}, {"url_list": None}, {"image_size": 128}])
def test_missing_url_list_is_refused(values):
    with pytest.raises(ConfigError, match="url_list is required"):
        Config.from_dict(values)


@pytest.mark.parametrize("bad", ["", "   ", 5, ["a.txt"]])
def test_bad_url_list_is_refused(bad):
    with pytest.raises(ConfigError, match="url_list must"):
        Config(url_list=bad)


@pytest.mark.parametrize("name", ["url_col", "output_folder"])
def test_empty_required_strings_are_refused(name):
    refused(rf"{name} must be a non-empty string", **{name: " "})


@pytest.mark.parametrize("name", ["caption_col", "user_agent_token", "master"])
def test_empty_optional_strings_are_refused(name):
    refused(rf"{name} must be a non-empty string or none", **{name: ""})


def test_storage_options_must_be_a_dict():
    refused("storage_options must be a JSON object", storage_options=["key", "x"])


def test_unknown_distributor_is_refused():
    refused("distributor", distributor="ray")


# -- img2dataset options that are refused instead of silently ignored ----------


def test_every_img2dataset_output_format_is_accepted_and_others_are_named():
    for fmt in ("webdataset", "files", "parquet", "tfrecord", "dummy", "npz"):
        assert Config(url_list="x", output_format=fmt).output_format == fmt
    refused("output_format must be one of webdataset, files, parquet, tfrecord, npz, dummy", output_format="tiff")


def test_bbox_col_is_read_and_kept_like_an_additional_column():
    assert Config(url_list="x", bbox_col="boxes").additional_columns == ["boxes"]
    refused("bbox_col must be a non-empty string or none", bbox_col=" ")


def test_verify_hash_takes_a_column_and_a_known_hash_type():
    refused(r"verify_hash must be \[input column, hash type\]", verify_hash=["sha256_col", "crc32"])
    refused(r"verify_hash must be \[input column, hash type\]", verify_hash=["sha256_col"])
    cfg = Config(url_list="x", verify_hash=["expected", "md5"], save_additional_columns=["a"])
    assert cfg.additional_columns == ["a", "expected"]  # read from the input and kept, as img2dataset does


def test_enable_wandb_is_refused_with_a_pointer_to_the_summary():
    refused("enable_wandb is not supported: every figure of a run is in .*_summary.json", enable_wandb=True)


# -- accepted values ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["webdataset", "files", "parquet", "dummy"])
def test_supported_output_formats_are_accepted(fmt):
    assert make(output_format=fmt).output_format == fmt


@pytest.mark.parametrize(
    "fmt", ["txt", "txt.gz", "csv", "csv.gz", "tsv", "tsv.gz", "json", "json.gz", "jsonl", "jsonl.gz", "parquet"]
)
def test_img2dataset_input_formats_are_accepted(fmt):
    assert make(input_format=fmt).input_format == fmt


@pytest.mark.parametrize("mode", ["no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"])
def test_img2dataset_resize_modes_are_accepted(mode):
    assert make(resize_mode=mode).resize_mode == mode


def test_allow_private_networks_is_accepted():
    assert make(allow_private_networks=True).allow_private_networks is True


def test_empty_disallowed_directives_disable_the_opt_out_check():
    cfg = make(disallowed_header_directives=[])
    assert cfg.disallowed_header_directives == []
    assert cfg.directives == frozenset()


def test_custom_directives_are_lower_cased_and_stripped():
    cfg = make(disallowed_header_directives=[" NoAI ", "noindex"])
    assert cfg.directives == frozenset({"noai", "noindex"})


@pytest.mark.parametrize("n, digits", [(10000, 4), (1000, 3), (10, 1), (5, 1)])
def test_oom_sample_per_shard_follows_img2dataset(n, digits):
    assert make(number_sample_per_shard=n).oom_sample_per_shard == digits


def test_float_limits_and_timeout_accept_numbers():
    cfg = make(max_image_area=1e6, max_aspect_ratio=3, timeout=2.5)
    assert (cfg.max_image_area, cfg.max_aspect_ratio, cfg.timeout) == (1e6, 3, 2.5)


@pytest.mark.parametrize("bad", [math.inf, "inf", 1e300])
def test_infinite_timeout_is_refused(bad):
    with pytest.raises(ConfigError, match="timeout"):
        Config.from_dict({"url_list": "u.txt", "timeout": bad})


# -- from_dict string coercion (CLI and YAML text) -------------------------------


def from_text(**values: str) -> Config:
    return Config.from_dict({"url_list": "u.txt", **values})


def test_integers_are_parsed():
    cfg = from_text(image_size="256", thread_count=" 16 ", retries="0")
    assert (cfg.image_size, cfg.thread_count, cfg.retries) == (256, 16, 0)
    assert type(cfg.image_size) is int


@pytest.mark.parametrize("bad", ["12.5", "1e3", "", "ten"])
def test_non_integer_text_is_refused(bad):
    with pytest.raises(ConfigError, match="thread_count must be an integer"):
        from_text(thread_count=bad)


@pytest.mark.parametrize(
    "text, expected",
    [("true", True), ("True", True), ("1", True), ("yes", True), ("false", False), ("FALSE", False), ("0", False)],
)
def test_bools_are_parsed(text, expected):
    assert from_text(extract_exif=text).extract_exif is expected
    assert from_text(allow_private_networks=text).allow_private_networks is expected


def test_bad_bool_text_is_refused():
    with pytest.raises(ConfigError, match="skip_reencode must be true or false, got 'maybe'"):
        from_text(skip_reencode="maybe")


def test_floats_are_parsed_including_inf():
    cfg = from_text(max_image_area="inf", max_aspect_ratio="2.5", timeout="3")
    assert cfg.max_image_area == math.inf
    assert cfg.max_aspect_ratio == 2.5
    assert cfg.timeout == 3.0


def test_bad_float_text_is_refused():
    with pytest.raises(ConfigError, match="max_aspect_ratio must be a number"):
        from_text(max_aspect_ratio="wide")


@pytest.mark.parametrize("text", ["a,b", " a , b ,", '["a","b"]', '[ "a", "b" ]'])
def test_lists_are_parsed_from_commas_or_json(text):
    assert from_text(save_additional_columns=text).save_additional_columns == ["a", "b"]


def test_tuple_list_is_made_a_list():
    assert Config.from_dict({"url_list": "u", "save_additional_columns": ("a", "b")}).save_additional_columns == [
        "a",
        "b",
    ]


def test_directives_text_is_parsed():
    assert from_text(disallowed_header_directives="noai,noindex").directives == frozenset({"noai", "noindex"})
    assert from_text(disallowed_header_directives="").directives == frozenset()
    assert from_text(disallowed_header_directives="[]").directives == frozenset()
    assert from_text(disallowed_header_directives="none").disallowed_header_directives is None


def test_bad_json_list_is_refused_naming_the_option():
    with pytest.raises(ConfigError, match="save_additional_columns is not valid JSON"):
        from_text(save_additional_columns='["a",')


@pytest.mark.parametrize("text", ["none", "None", "null", ""])
def test_none_words_are_none(text):
    cfg = from_text(caption_col=text, user_agent_token=text, master=text, compute_hash=text)
    assert (cfg.caption_col, cfg.user_agent_token, cfg.master, cfg.compute_hash) == (None, None, None, None)


def test_plain_strings_are_kept():
    cfg = from_text(caption_col="caption_text", output_folder="s3://b/ds", master="local[2]")
    assert (cfg.caption_col, cfg.output_folder, cfg.master) == ("caption_text", "s3://b/ds", "local[2]")


def test_storage_options_are_parsed_from_json():
    cfg = from_text(storage_options='{"anon": false, "client_kwargs": {"endpoint_url": "http://h:9000"}}')
    assert cfg.storage_options == {"anon": False, "client_kwargs": {"endpoint_url": "http://h:9000"}}
    assert from_text(storage_options="").storage_options == {}


@pytest.mark.parametrize("bad", ["{key: 1}", "{'key': 1}", '{"a": 1'])
def test_invalid_storage_options_json_names_the_option(bad):
    with pytest.raises(ConfigError, match="storage_options is not valid JSON") as info:
        from_text(storage_options=bad)
    assert "\n" not in str(info.value)


def test_storage_options_json_that_is_not_an_object_is_refused():
    with pytest.raises(ConfigError, match="storage_options must be a JSON object"):
        from_text(storage_options='["a"]')


def test_non_string_values_are_not_coerced():
    with pytest.raises(ConfigError, match="image_size"):
        Config.from_dict({"url_list": "u", "image_size": 12.0})
    with pytest.raises(ConfigError, match="extract_exif"):
        Config.from_dict({"url_list": "u", "extract_exif": 1})


# -- to_public_dict -----------------------------------------------------------


SECRET_OPTIONS = {
    "key": "AKIAEXAMPLE",
    "secret": "s3cr3t",
    "token": "session-token",
    "anon": False,
    "client_kwargs": {
        "endpoint_url": "http://minio:9000",
        "aws_secret_access_key": "nested-secret",
        "region_name": "eu-west-1",
    },
}


def test_public_dict_redacts_storage_secrets():
    public = make(storage_options=SECRET_OPTIONS).to_public_dict()["storage_options"]
    assert public == {
        "key": "***",
        "secret": "***",
        "token": "***",
        "anon": False,
        "client_kwargs": {
            "endpoint_url": "http://minio:9000",
            "aws_secret_access_key": "***",
            "region_name": "eu-west-1",
        },
    }


def test_public_dict_leaves_config_untouched():
    cfg = make(storage_options=SECRET_OPTIONS)
    cfg.to_public_dict()
    assert cfg.storage_options["secret"] == "s3cr3t"
    assert cfg.storage_options["client_kwargs"]["aws_secret_access_key"] == "nested-secret"


def test_public_dict_serialises_to_json_without_secrets():
    public = make(storage_options=SECRET_OPTIONS, save_additional_columns=["a"]).to_public_dict()
    text = json.dumps(public, allow_nan=False)
    for secret in ("AKIAEXAMPLE", "s3cr3t", "session-token", "nested-secret"):
        assert secret not in text
    back = json.loads(text)
    assert back["max_image_area"] == "inf"
    assert back["max_aspect_ratio"] == "inf"
    assert back["image_size"] == 256
    assert back["save_additional_columns"] == ["a"]
    assert back["url_list"] == "urls.txt"
    assert set(back) == {f.name for f in option_fields()}


def test_public_dict_keeps_finite_floats():
    public = make(max_image_area=1e6, timeout=2.5).to_public_dict()
    assert public["max_image_area"] == 1e6
    assert public["timeout"] == 2.5


def test_public_dict_names_a_dataframe_url_list_by_type():
    class DataFrame:  # any object with a sparkSession is taken as a Spark DataFrame
        sparkSession = object()

    public = Config(url_list=DataFrame()).to_public_dict()
    assert public["url_list"] == "<DataFrame>"
    json.dumps(public)


@pytest.mark.parametrize(
    "options",
    [
        {"connection_string": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=TOPSECRET"},
        {"client_kwargs": {"headers": {"Authorization": "Bearer TOPSECRET"}}},
        {"config_kwargs": [{"password": "TOPSECRET"}]},
    ],
)
def test_public_dict_redacts_other_secret_carriers(options):
    assert "TOPSECRET" not in json.dumps(make(storage_options=options).to_public_dict())


@pytest.mark.parametrize(
    ("options", "limit"),
    [({}, 60.0), ({"timeout": 30}, 90.0), ({"timeout": 30, "retries": 2}, 270.0), ({"stall_timeout": 5}, 5.0)],
)
def test_shard_stall_limit_outlasts_every_healthy_download(options, limit):
    assert make(**options).shard_stall_limit == limit


def test_stall_timeout_from_the_command_line_text():
    assert Config.from_dict({"url_list": "u.txt", "stall_timeout": "2.5"}).stall_timeout == 2.5


def test_an_unknown_option_names_the_closest_known_one():
    with pytest.raises(ConfigError, match=r"unknown option\(s\): image_sise \(did you mean image_size\?\), zzz$"):
        Config.from_dict({"url_list": "x", "image_sise": 3, "zzz": 1})


def test_the_logged_options_are_the_changed_ones_with_secrets_hidden():
    cfg = Config(url_list="s3://b/u.parquet?X-Amz-Signature=abc", image_size=64, storage_options={"secret": "s"})
    assert cfg.changed_options() == {
        "url_list": "s3://b/u.parquet?X-Amz-Signature=***",
        "image_size": 64,
        "storage_options": {"secret": "***"},
    }


def test_pin_cpus_auto_pins_in_local_mode_only():
    auto = Config(url_list="u.txt")
    assert auto.pin_cpus == "auto"
    assert auto.pins_cpus("local[2]") and auto.pins_cpus("local-cluster[2,1,1024]")
    assert not auto.pins_cpus("yarn") and not auto.pins_cpus("k8s://https://api:6443")
    assert not auto.pins_cpus("spark://master:7077")
    assert Config(url_list="u.txt", pin_cpus=True).pins_cpus("yarn")
    assert not Config(url_list="u.txt", pin_cpus=False).pins_cpus("local[2]")
    assert Config.from_dict({"url_list": "u.txt", "pin_cpus": "TRUE"}).pin_cpus is True
    assert Config.from_dict({"url_list": "u.txt", "pin_cpus": "auto"}).pin_cpus == "auto"
    with pytest.raises(ConfigError, match="pin_cpus must be auto, true or false"):
        Config(url_list="u.txt", pin_cpus="sometimes")
    with pytest.raises(ConfigError, match="pin_cpus must be auto, true or false"):
        Config(url_list="u.txt", pin_cpus=1)
