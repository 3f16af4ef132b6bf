"""Numbering every input row and assigning it a shard, in Spark.

A row's position is its rank in input order: files sorted by path, then split
start, then order inside the split. One small aggregation counts the rows of
each split; the driver turns the counts into offsets, and a broadcast join adds
the offset to each row. No global sort and nothing collected but the counts.

Positions must come out the same every time the input is read (the counting
job, the main job, shard retries, a rerun after a crash). Spark cuts files into
splits by a size that depends on the cores it sees at that moment, so the
split settings are pinned for the duration of a run (see pinned_split_conf).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spark_img2ds.dataset.columns import INDEX_COL, SHARD_COL
from spark_img2ds.driver.reader import BLOCK_COL, FILE_COL

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

ROW_ID = "_img2ds_row"
SLOT = "_img2ds_slot"
BASE = "_img2ds_base"
SLOT_MAP_LIMIT = 4096
SPLIT_CONF = {
    "spark.sql.files.maxPartitionBytes": str(128 * 1024 * 1024),
    "spark.sql.files.openCostInBytes": str(4 * 1024 * 1024),
    "spark.sql.files.minPartitionNum": "1",
    # Not about splits: with it on, SQL and RDD Python workers are pooled apart, and the
    # download tasks could not reuse the workers the warm-up started (tuning/warmup.py).
    "spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled": "false",
}


@contextlib.contextmanager
def pinned_split_conf(spark: SparkSession) -> Iterator[None]:
    """Fix how Spark splits input files while a run lasts; restore afterwards."""
    conf = spark.conf
    saved = {k: conf.get(k, None) for k in SPLIT_CONF}
    for k, v in SPLIT_CONF.items():
        conf.set(k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                conf.unset(k)
            else:
                conf.set(k, v)


@dataclass(frozen=True)
class KeyedInput:
    """The input with shard id and index columns, and how many rows it has."""

    df: DataFrame
    total_rows: int


def split_offsets(groups: list[tuple[str, int, int, int]]) -> list[tuple[str, int, int]]:
    """(file, block, rows, first row id) per split -> (file, block, base) with position = base + row id."""
    out = []
    offset = 0
    for file, block, rows, first in sorted(groups, key=lambda g: (g[0], g[1])):
        out.append((file, block, offset - first))
        offset += rows
    return out


def assign_shards(df: DataFrame, number_sample_per_shard: int) -> KeyedInput:
    """Add SHARD_COL and INDEX_COL to every row, deterministically from input order.

    Input from one file (or a DataFrame) whose rows all sit in Spark's first partition
    (a file up to 128 MB, any gzipped file, a one-partition DataFrame) is numbered by its
    row id alone. One job counts the rows and finds the largest row id: ids 0..n-1 prove
    it, since a row of any later partition has an id of at least 2^33. The per-split
    counts, their offsets and the join that adds them would cost a first run about a
    second of Spark planning for nothing. Several small files can share one partition,
    in the order Spark packs them (largest first), so they always take the general path.
    """
    from pyspark.sql import functions as F

    spark = df.sparkSession
    df = df.withColumn(ROW_ID, F.monotonically_increasing_id())
    if input_file_count(df) <= 1:
        found = df.agg(F.count(F.lit(1)).alias("rows"), F.max(ROW_ID).alias("last")).first()
        if in_first_partition(int(found["rows"]), found["last"]):
            return _keyed(df, F.col(ROW_ID), number_sample_per_shard, int(found["rows"]))
    counts = (
        df.groupBy(FILE_COL, BLOCK_COL).agg(F.count(F.lit(1)).alias("rows"), F.min(ROW_ID).alias("first")).collect()
    )
    groups = [(r[FILE_COL], int(r[BLOCK_COL]), int(r["rows"]), int(r["first"])) for r in counts]
    bases = spark.createDataFrame(
        split_offsets(groups) or [("", -1, 0)], f"{FILE_COL} string, {BLOCK_COL} long, {BASE} long"
    )
    joined = df.join(F.broadcast(bases), [FILE_COL, BLOCK_COL])
    return _keyed(joined, F.col(BASE) + F.col(ROW_ID), number_sample_per_shard, sum(g[2] for g in groups))


def offset_shards(keyed: KeyedInput, first: int) -> KeyedInput:
    """The same rows with shard ids starting at first (incremental_mode=extend)."""
    if not first:
        return keyed
    from pyspark.sql import functions as F

    return KeyedInput(keyed.df.withColumn(SHARD_COL, F.col(SHARD_COL) + F.lit(first)), keyed.total_rows)


def input_file_count(df: DataFrame) -> int:
    """How many files df reads, asked of the JVM in one call.

    DataFrame.inputFiles() copies the paths over py4j one call each: 0.4 s for 3,000
    files, minutes for a million.
    """
    return len(df._jdf.inputFiles())


def in_first_partition(rows: int, last_row_id: int | None) -> bool:
    """Whether rows whose largest monotonically_increasing_id is last_row_id all sit in partition 0.

    Spark's ids are (partition index << 33) + position in the partition, so only rows of
    partition 0, and all of them, make the ids exactly 0..rows-1.
    """
    return rows == 0 or last_row_id == rows - 1


def _keyed(df: DataFrame, position: Column, number_sample_per_shard: int, total: int) -> KeyedInput:
    from pyspark.sql import functions as F

    keyed = (
        df.withColumn(SHARD_COL, F.floor(position / F.lit(number_sample_per_shard)).cast("long"))
        .withColumn(INDEX_COL, (position % F.lit(number_sample_per_shard)).cast("long"))
        .drop(FILE_COL, BLOCK_COL, ROW_ID, BASE)
    )
    return KeyedInput(keyed, total)


def _rotl(x, r: int):
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix(h1, k1):
    k1 = _rotl(k1 * np.uint32(0xCC9E2D51), 15) * np.uint32(0x1B873593)
    return _rotl(h1 ^ k1, 13) * np.uint32(5) + np.uint32(0xE6546B64)


def spark_hash_longs(values: np.ndarray, seed: int = 42) -> np.ndarray:
    """Spark SQL's hash() of bigint values (Murmur3_x86_32.hashLong), as signed 32-bit ints.

    repartition(n, col) sends a row to pmod(hash(col), n), so this says, without a
    Spark job, which partition a value lands in.
    """
    v = np.asarray(values, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        h = np.full(v.shape, seed, dtype=np.uint32)
        h = _mix(h, (v & np.uint64(0xFFFFFFFF)).astype(np.uint32))
        h = _mix(h, (v >> np.uint64(32)).astype(np.uint32))
        h ^= np.uint32(8)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
    return h.view(np.int32)


def partition_slots(n: int, batch: int = 1 << 16, limit: int = 1 << 26) -> dict[int, int] | None:
    """For each partition p of n, the smallest long that repartition(n, col) sends to p.

    None if the first `limit` longs miss a partition (no case is known).
    """
    slots: dict[int, int] = {}
    for start in range(0, limit, batch):
        ids = np.arange(start, start + batch, dtype=np.int64)
        parts = np.mod(spark_hash_longs(ids).astype(np.int64), n)
        found, first = np.unique(parts, return_index=True)
        for p, i in zip(found.tolist(), first.tolist(), strict=True):
            slots.setdefault(p, int(ids[i]))
        if len(slots) == n:
            return slots
    return None


def task_groups(shard_ids: list[int], per_task: int) -> list[list[int]]:
    """Shards in order, cut into ceil(n / per_task) runs of consecutive shards whose sizes differ by at most one."""
    ids = sorted(shard_ids)
    if not ids:
        return []
    tasks = -(-len(ids) // max(1, per_task))
    size, extra = divmod(len(ids), tasks)
    groups, start = [], 0
    for t in range(tasks):
        end = start + size + (1 if t < extra else 0)
        groups.append(ids[start:end])
        start = end
    return groups


def shards_per_task(option: int, shards: int, master: str, parallelism: int) -> int:
    """How many shards one Spark task downloads in a row.

    option > 0 is the user's choice. Automatic: in local mode every task slot is the same
    machine, so one task per slot carries its share of the shards and no shard boundary
    costs a task launch; on a cluster one shard per task lets Spark balance shards across
    executors and re-run only the shard of a lost task.
    """
    if option > 0:
        return option
    if master.startswith("local"):
        return max(1, -(-shards // max(1, parallelism)))
    return 1


def shards_to_run(
    keyed: DataFrame, shard_ids: list[int], map_limit: int = SLOT_MAP_LIMIT, per_task: int = 1
) -> DataFrame:
    """The rows of the given shards in Spark partitions of per_task consecutive shards, sorted for streaming.

    A partition gets exactly the shards task_groups gives it; a range partitioning would
    sometimes put more shards in one task and none in another. Up to map_limit shards,
    the shard -> slot table is a literal map in the plan, which costs no Spark job; more
    would bloat every task, and are joined.
    """
    from pyspark.sql import functions as F

    spark = keyed.sparkSession
    groups = task_groups(shard_ids, per_task)
    n = max(1, len(groups))
    slots = partition_slots(n)
    pairs_of = [(s, g) for g, members in enumerate(groups) for s in members]
    if slots is None:
        wanted = spark.createDataFrame(pairs_of, f"{SHARD_COL} long, {SLOT} long")
        rows = keyed.join(F.broadcast(wanted), SHARD_COL).repartitionByRange(n, SLOT).drop(SLOT)
    elif len(pairs_of) <= map_limit:
        # Shard ids are never negative: with no shard asked for, the one key matches no row.
        pairs = ", ".join(f"{s}L, {slots[g]}L" for s, g in pairs_of) or "-1L, 0L"
        slot = F.expr(f"try_element_at(map({pairs}), {SHARD_COL})")
        rows = keyed.withColumn(SLOT, slot).where(F.col(SLOT).isNotNull()).repartition(n, SLOT).drop(SLOT)
    else:
        wanted = spark.createDataFrame([(s, slots[g]) for s, g in pairs_of], f"{SHARD_COL} long, {SLOT} long")
        rows = keyed.join(F.broadcast(wanted), SHARD_COL).repartition(n, SLOT).drop(SLOT)
    return rows.sortWithinPartitions(SHARD_COL, INDEX_COL)
