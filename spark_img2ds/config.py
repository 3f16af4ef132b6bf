"""The one typed, validated configuration object.

CLI flags, a YAML file and ``download()`` keyword arguments all build a
:class:`Config`; no option is parsed anywhere else. Names and defaults follow
img2dataset 1.47's ``download()`` so that a user migrates by changing one import.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

from spark_img2ds.arrays.options import CHANNEL_MODES, DTYPES, NORMALIZE_MODES, ConversionOptions
from spark_img2ds.dataset.columns import HASHES, MetadataColumns
from spark_img2ds.dataset.layout import index_digits
from spark_img2ds.errors import ConfigError
from spark_img2ds.imaging.options import (
    DEFAULT_IMAGE_OPTIONS,
    ENCODE_FORMATS,
    IMAGE_OPTION_NAMES,
    INTERPOLATIONS,
    RESIZE_MODES,
    ImageOptions,
)
from spark_img2ds.net.policy import (
    CONNECT_TIMEOUT,
    MAX_CONNECTIONS_PER_HOST,
    MAX_DOWNLOAD_BYTES,
    MAX_REDIRECTS,
    AddressPolicy,
)
from spark_img2ds.net.politeness import UNANSWERED_LIMIT
from spark_img2ds.net.robots import DEFAULT_DISALLOWED_DIRECTIVES
from spark_img2ds.secrets import redact, redact_url
from spark_img2ds.validation import LIST_OPTIONS, field_kinds, validate
from spark_img2ds.writers import OUTPUT_FORMATS

INPUT_FORMATS = (
    "txt",
    "txt.gz",
    "csv",
    "csv.gz",
    "tsv",
    "tsv.gz",
    "json",
    "json.gz",
    "jsonl",
    "jsonl.gz",
    "parquet",
)
INCREMENTAL_MODES = ("incremental", "overwrite", "extend")


_IMG = DEFAULT_IMAGE_OPTIONS
_ARR = ConversionOptions()
_INTERPOLATIONS = tuple(INTERPOLATIONS)


def _opt(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field carrying its CLI help and validation hints."""
    factory = meta.pop("factory", None)
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class Config:
    """Every option of a download run, validated on construction."""

    url_list: Any = _opt(None, "input file, folder of files, or (Python API) a Spark DataFrame", required=True)
    image_size: int = _opt(_IMG.image_size, "target size in pixels")
    output_folder: str = _opt("images", "local path or fsspec URL (s3://...) of the dataset")
    processes_count: int = _opt(1, "cores of the local Spark session created when no master/session is given")
    resize_mode: str = _opt(_IMG.resize_mode, ", ".join(RESIZE_MODES), choices=RESIZE_MODES)
    resize_only_if_bigger: bool = _opt(_IMG.resize_only_if_bigger, "only resize images larger than image_size")
    upscale_interpolation: str = _opt(
        _IMG.upscale_interpolation, "interpolation when enlarging", choices=_INTERPOLATIONS
    )
    downscale_interpolation: str = _opt(
        _IMG.downscale_interpolation, "interpolation when shrinking", choices=_INTERPOLATIONS
    )
    fast_downscale: bool = _opt(
        _IMG.fast_downscale, "with area interpolation, shrink by less than 2x bilinearly (no aliasing, 3x cheaper)"
    )
    fast_decode: bool = _opt(
        _IMG.fast_decode, "decode JPEGs reduced down to the target size, not twice it: faster, some images softer"
    )
    encode_quality: int = _opt(_IMG.encode_quality, "jpg/webp quality 0-100, or png compression 0-9")
    encode_format: str = _opt(_IMG.encode_format, ", ".join(ENCODE_FORMATS), choices=ENCODE_FORMATS)
    skip_reencode: bool = _opt(
        _IMG.skip_reencode, "keep the original bytes when no resize is needed and the format matches"
    )
    output_format: str = _opt("files", ", ".join(OUTPUT_FORMATS), choices=OUTPUT_FORMATS)
    channel_mode: str = _opt(_ARR.channel_mode, "npz: RGB, RGBA, L, LA or auto (the source's)", choices=CHANNEL_MODES)
    normalize_mode: str = _opt(
        _ARR.normalize_mode, "npz: none, 0..1 or -1..1, by the source's real bit depth", choices=NORMALIZE_MODES
    )
    dtype: str = _opt(_ARR.dtype, "npz: " + ", ".join(DTYPES), choices=DTYPES)
    flatten: bool = _opt(_ARR.flatten, "npz: store each array flattened to one dimension")
    frame: int | str = _opt(_ARR.frame, "npz: which frame of a multi-frame image (0, 1, ...) or all")
    npz_compressed: bool = _opt(False, "npz: deflate the shard, as numpy.savez_compressed does")
    input_format: str = _opt("txt", "format of the input files", choices=INPUT_FORMATS)
    url_col: str = _opt("url", "column holding the URL")
    caption_col: str | None = _opt(None, "column holding the caption")
    bbox_col: str | None = _opt(None, "column of boxes [[x0, y0, x1, y1], ...] relative to the image, blurred")
    thread_count: int = _opt(256, "downloads in flight per Spark task, as in img2dataset")
    number_sample_per_shard: int = _opt(10000, "samples per output shard")
    extract_exif: bool = _opt(True, "store EXIF tags as a JSON string in the 'exif' column")
    save_additional_columns: list[str] | None = _opt(None, "extra input columns to keep in the metadata")
    label_col: str | None = _opt(None, "input column of class labels: kept in the metadata, counted in the summary")
    split_col: str | None = _opt(None, "input column of dataset splits (train, val, ...): kept and counted")
    metadata: dict[str, Any] = _opt(
        None, "a JSON object merged into every sample's metadata; a row's own columns win", factory=dict
    )
    timeout: float = _opt(10, "seconds allowed for one download attempt, connect and body included")
    connect_timeout: float = _opt(
        CONNECT_TIMEOUT,
        "seconds allowed to open a connection (TCP and TLS handshake), within timeout; a host whose "
        f"connections time out {UNANSWERED_LIMIT} times in a row is skipped for a while",
    )
    oom_shard_count: int = _opt(5, "digits of the shard number in file names and keys")
    compute_hash: str | None = _opt("sha256", f"hash of the raw bytes: {', '.join(HASHES)} or none")
    verify_hash: list[str] | None = _opt(None, "[input column, hash type] to check downloads against")
    retries: int = _opt(0, "extra attempts per URL on transient errors, with backoff")
    disable_all_reencoding: bool = _opt(_IMG.disable_all_reencoding, "store the downloaded bytes as they are")
    min_image_size: int = _opt(_IMG.min_image_size, "reject images whose smaller side is below this")
    max_image_area: float = _opt(_IMG.max_image_area, "reject images with more pixels than this")
    max_aspect_ratio: float = _opt(_IMG.max_aspect_ratio, "reject images whose side ratio exceeds this")
    max_image_pixels: int = _opt(
        _IMG.max_image_pixels, "refuse images whose header declares more pixels, before decoding them"
    )
    incremental_mode: str = _opt(
        "incremental",
        "incremental (skip finished shards), overwrite, or extend (a new input's shards after the existing ones)",
        choices=INCREMENTAL_MODES,
    )
    max_shard_retry: int = _opt(1, "times the driver re-runs shards that failed")
    retry_failed_from: str | None = _opt(
        None,
        "a finished dataset whose failed rows are downloaded again, in place (no url_list): the shards that "
        "gain samples are rewritten, old successes kept byte for byte; its recorded options apply",
    )
    retry_errors: list[str] | None = _opt(
        None, "with retry_failed_from: only rows whose error contains one of these texts (case-insensitive)"
    )
    user_agent_token: str | None = _opt(None, "token added to the user agent and matched in X-Robots-Tag")
    disallowed_header_directives: list[str] | None = _opt(
        None, f"X-Robots-Tag directives that opt an image out (default {','.join(DEFAULT_DISALLOWED_DIRECTIVES)})"
    )
    ignore_ssl_certificate: bool = _opt(False, "do not verify TLS certificates")
    master: str | None = _opt(None, "Spark master URL; default: the active session, else local[processes_count,4]")
    storage_options: dict[str, Any] = _opt(None, "fsspec options for the output (JSON on the CLI)", factory=dict)
    progress_interval: float = _opt(5.0, "seconds between progress lines in the driver log")
    verbose: bool = _opt(False, "log each shard's outcome, and Spark's INFO lines in a local session")
    stall_timeout: float = _opt(
        0, "seconds a shard may go without finishing a sample before it is abandoned and retried; 0: automatic"
    )
    shards_per_task: int = _opt(
        0,
        "shards one Spark task downloads in a row, the next one's downloads starting while the last one's "
        "finish; 0: automatic (local mode: one task per core; a cluster: 1)",
    )
    pin_cpus: bool | str = _opt(
        "auto",
        "pin each running shard task to a CPU of its own (measured ~8% less CPU per image on a host the job owns); "
        "auto: in local mode only, since containers of a cluster manager share hosts and cannot see each other's pins",
    )
    malloc_arena_max: int = _opt(
        2,
        "glibc malloc arenas per Python worker; its threads otherwise grow an arena each (measured: 45% less "
        "worker memory at thread_count 64); 0: glibc's default; MALLOC_ARENA_MAX in the environment wins",
    )
    allow_private_networks: bool = _opt(
        False, "admit loopback and private addresses (RFC 1918, fc00::/7); link-local and metadata stay refused"
    )
    allowed_networks: list[str] | None = _opt(
        None,
        "addresses or CIDR networks admitted whatever their class (cloud metadata excepted); a JSON list on the CLI",
    )
    max_redirects: int = _opt(MAX_REDIRECTS, "redirects followed per download")
    max_connections_per_host: int = _opt(
        MAX_CONNECTIONS_PER_HOST,
        "requests in flight to one host from one Spark task; a host answering 429/503 also gets a cool-down "
        "(doubling, or its Retry-After); 0: no limit",
    )
    proxy: str | None = _opt(
        None, "http(s)://[user:password@]host:port of a forward proxy; default: HTTPS_PROXY / HTTP_PROXY, NO_PROXY"
    )
    max_download_bytes: int = _opt(
        MAX_DOWNLOAD_BYTES, "largest body accepted, as announced, received and decoded (gzip/deflate); 0: no limit"
    )
    distributor: str = _opt("pyspark", "img2dataset compatibility: Spark is always the distributor")
    subjob_size: int = _opt(1000, "img2dataset compatibility: has no effect, sharding happens in Spark")
    enable_wandb: bool = _opt(False, "img2dataset compatibility: wandb logging (not supported yet)")
    wandb_project: str = _opt("img2dataset", "img2dataset compatibility: wandb project (used only with enable_wandb)")

    def __post_init__(self) -> None:
        validate(self)

    # -- construction -------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Build from a mapping of option names, refusing unknown names."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in values if not isinstance(k, str) or k not in known)
        if unknown:
            hints = [
                f"{k} (did you mean {close[0]}?)" if (close := get_close_matches(k, known, 1)) else k for k in unknown
            ]
            raise ConfigError(f"unknown option(s): {', '.join(hints)}")
        return cls(**{k: _coerce(k, v) for k, v in values.items()})

    # -- derived values -----------------------------------------------
    @property
    def directives(self) -> frozenset[str]:
        """The opt-out directives in force, lower-cased."""
        if self.disallowed_header_directives is None:
            return frozenset(DEFAULT_DISALLOWED_DIRECTIVES)
        return frozenset(d.strip().lower() for d in self.disallowed_header_directives if d.strip())

    @property
    def oom_sample_per_shard(self) -> int:
        """Digits reserved for the index inside a shard (img2dataset's key format)."""
        return index_digits(self.number_sample_per_shard)

    @property
    def shard_stall_limit(self) -> float:
        """stall_timeout, or a limit no healthy shard reaches: every download ends within its deadlines."""
        if self.stall_timeout:
            return float(self.stall_timeout)
        return max(60.0, 3 * self.timeout * (self.retries + 1))

    @property
    def additional_columns(self) -> list[str]:
        """The input columns kept in the metadata: save_additional_columns, then label_col, split_col,
        verify_hash's column and bbox_col."""
        columns = list(self.save_additional_columns or [])
        for name in (self.label_col, self.split_col, self.verify_hash[0] if self.verify_hash else None, self.bbox_col):
            if name and name not in columns and name != self.caption_col:
                columns.append(name)
        return columns

    def pins_cpus(self, master: str) -> bool:
        """Whether tasks pin themselves to CPUs under this Spark master (pin_cpus=auto: in local mode only)."""
        if isinstance(self.pin_cpus, bool):
            return self.pin_cpus
        return master.startswith("local")

    def address_policy(self) -> AddressPolicy:
        """Which addresses downloads may connect to."""
        return AddressPolicy.build(self.allow_private_networks, self.allowed_networks)

    def conversion_options(self) -> ConversionOptions:
        """How npz output turns an image into an array; the job's image_size and resize_mode apply first."""
        resize = self.resize_mode != "no"
        return ConversionOptions(
            channel_mode=self.channel_mode,
            normalize_mode=self.normalize_mode,
            dtype=self.dtype,
            flatten=self.flatten,
            frame=self.frame,
            image_size=self.image_size if resize else None,
            resize_mode=self.resize_mode,
        )

    def image_options(self) -> ImageOptions:
        """The options of the image path (imaging/ takes these, not the Config)."""
        return ImageOptions(**{name: getattr(self, name) for name in IMAGE_OPTION_NAMES})

    def metadata_columns(self) -> MetadataColumns:
        """Which metadata columns this run writes."""
        return MetadataColumns(
            tuple(self.additional_columns),
            self.caption_col is not None,
            self.extract_exif,
            self.compute_hash,
            tuple(self.metadata.items()),
        )

    def changed_options(self) -> dict[str, Any]:
        """The options set to something else than their default, as to_public_dict shows them (for the log)."""
        defaults = Config(url_list="-").to_public_dict()
        return {k: v for k, v in self.to_public_dict().items() if k == "url_list" or v != defaults.get(k)}

    def to_public_dict(self) -> dict[str, Any]:
        """The options as JSON-safe values with secrets and DataFrames replaced."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "url_list" and not isinstance(value, str | None):
                value = f"<{type(value).__name__}>"
            elif f.name == "storage_options":
                value = redact(value)
            elif f.name in ("url_list", "output_folder", "proxy") and isinstance(value, str):
                value = redact_url(value)
            elif isinstance(value, float) and math.isinf(value):
                value = "inf"
            out[f.name] = value
        return out


def option_fields() -> list[dataclasses.Field]:
    """The option fields in declaration order (the CLI is built from these)."""
    return list(dataclasses.fields(Config))


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _coerce(name: str, value: Any) -> Any:
    """Turn CLI/YAML text into the field's type; validation happens afterwards."""
    if not isinstance(value, str):
        if name in LIST_OPTIONS and isinstance(value, tuple):
            return list(value)
        return value
    text = value.strip()
    if name in (
        "caption_col",
        "bbox_col",
        "user_agent_token",
        "master",
        "compute_hash",
        "proxy",
        "label_col",
        "split_col",
        "retry_failed_from",
    ) and (text.lower()) in (
        "none",
        "null",
        "",
    ):
        return None
    if name in LIST_OPTIONS:
        if text.lower() in ("none", "null"):
            return None
        if text.startswith("["):
            return _parse_json(name, text)
        return [part.strip() for part in text.split(",") if part.strip()]
    if name in ("storage_options", "metadata"):
        return _parse_json(name, text) if text else {}
    if name == "frame":
        return int(text) if text.isdigit() else text
    if name == "pin_cpus" and text.lower() in _BOOL_WORDS:
        return _BOOL_WORDS[text.lower()]
    kind = _FIELD_KINDS.get(name)
    if kind is bool:
        if text.lower() not in _BOOL_WORDS:
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return _BOOL_WORDS[text.lower()]
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
    return value


def _parse_json(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{name} is not valid JSON: {err.msg} at character {err.pos}") from None


_FIELD_KINDS = field_kinds(Config)
