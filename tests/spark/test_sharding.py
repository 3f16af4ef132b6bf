"""Shard placement in Spark: each partition carries exactly the shards it is given (real local session)."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F

from spark_img2ds.dataset.columns import INDEX_COL, SHARD_COL
from spark_img2ds.driver import sharding
from spark_img2ds.driver.reader import BLOCK_COL, FILE_COL


def test_spark_hash_longs_matches_spark_sql_hash(spark):
    values = [0, 1, 2, 42, -1, -(2**63), 2**63 - 1, 2**31, 2**32 + 7, 123_456_789_012] + list(range(1000, 1500))
    df = spark.createDataFrame([(v,) for v in values], "v long").select("v", F.hash("v").alias("h"))
    expected = {r["v"]: r["h"] for r in df.collect()}
    ours = sharding.spark_hash_longs(np.array(values, dtype=np.int64)).tolist()
    assert dict(zip(values, ours, strict=True)) == expected


def test_partition_slots_are_the_smallest_per_partition():
    slots = sharding.partition_slots(8)
    parts = np.mod(sharding.spark_hash_longs(np.arange(max(slots.values()) + 1)).astype(np.int64), 8)
    assert slots == {p: int(np.flatnonzero(parts == p)[0]) for p in range(8)}
    assert sharding.partition_slots(1) == {0: 0}


@pytest.mark.parametrize("n", [1, 2, 7, 64, 1000])
def test_partition_slots_hash_to_their_partition(spark, n):
    slots = sharding.partition_slots(n)
    assert slots is not None and sorted(slots) == list(range(n))
    df = spark.createDataFrame([(v,) for v in slots.values()], "slot long").repartition(n, "slot")
    placed = {r["slot"]: r["p"] for r in df.select("slot", F.spark_partition_id().alias("p")).collect()}
    assert {p: placed[slot] for p, slot in slots.items()} == {p: p for p in range(n)}


@pytest.mark.parametrize("map_limit", [sharding.SLOT_MAP_LIMIT, 0], ids=["literal-map", "broadcast-join"])
@pytest.mark.parametrize(
    ("rows", "per_shard", "wanted", "per_task"),
    [(20_000, 2_500, None, 1), (95, 10, [1, 4, 5, 9], 1), (20_000, 2_500, None, 4), (95, 10, [0, 2, 3, 5, 8], 2)],
)
def test_each_partition_gets_exactly_its_group_of_shards(spark, rows, per_shard, wanted, per_task, map_limit):
    keyed = spark.range(rows).select(
        (F.col("id") / per_shard).cast("long").alias(SHARD_COL), (F.col("id") % per_shard).alias(INDEX_COL)
    )
    shard_ids = wanted or list(range(-(-rows // per_shard)))
    groups = sharding.task_groups(shard_ids, per_task)
    out = sharding.shards_to_run(keyed, shard_ids, map_limit, per_task=per_task)
    assert out.rdd.getNumPartitions() == len(groups)
    per_partition = (
        out.groupBy(F.spark_partition_id().alias("p")).agg(F.collect_set(SHARD_COL).alias("shards")).collect()
    )
    assert sorted(sorted(r["shards"]) for r in per_partition) == sorted(groups)
    assert out.count() == sum(min(per_shard, rows - s * per_shard) for s in shard_ids)


@pytest.mark.parametrize(
    ("ids", "per_task", "expected"),
    [
        ([], 3, []),
        ([0, 1, 2, 3, 4, 5, 6, 7], 1, [[i] for i in range(8)]),
        ([0, 1, 2, 3, 4, 5, 6, 7], 4, [[0, 1, 2, 3], [4, 5, 6, 7]]),
        ([0, 1, 2, 3, 4, 5, 6, 7, 8], 4, [[0, 1, 2], [3, 4, 5], [6, 7, 8]]),  # 3,3,3 rather than 4,4,1
        ([9, 2, 5], 5, [[2, 5, 9]]),
        ([0, 1, 2, 3, 4], 2, [[0, 1], [2, 3], [4]]),
    ],
)
def test_task_groups_are_consecutive_and_even(ids, per_task, expected):
    assert sharding.task_groups(ids, per_task) == expected


@pytest.mark.parametrize(
    ("option", "shards", "master", "parallelism", "expected"),
    [
        (3, 100, "spark://h:7077", 8, 3),  # the user's choice wins
        (0, 8, "local[2,4]", 2, 4),  # local: one task per core
        (0, 9, "local[2]", 2, 5),
        (0, 1, "local[4]", 4, 1),
        (0, 100, "spark://h:7077", 8, 1),  # a cluster: Spark balances single shards
        (0, 100, "yarn", 64, 1),
    ],
)
def test_shards_per_task(option, shards, master, parallelism, expected):
    assert sharding.shards_per_task(option, shards, master, parallelism) == expected


def test_rows_arrive_sorted_by_index_within_a_partition(spark):
    keyed = spark.range(300).select((F.col("id") % 3).alias(SHARD_COL), (F.lit(1000) - F.col("id")).alias(INDEX_COL))
    parts = sharding.shards_to_run(keyed, [0, 1, 2]).rdd.glom().collect()
    for part in parts:
        indices = [r[INDEX_COL] for r in part]
        assert indices == sorted(indices) and len(indices) == 100


def test_partition_slots_give_up_when_the_search_misses_a_partition():
    assert sharding.partition_slots(1000, batch=16, limit=64) is None  # 64 values cannot cover 1000 partitions
    assert sharding.partition_slots(4, batch=16, limit=64) is not None


@pytest.mark.parametrize("partitions", [1, 3])
def test_rows_are_numbered_in_input_order_with_one_split_or_several(spark, partitions):
    per_shard = 7
    df = spark.range(0, 50, 1, partitions).select(
        "id", F.lit("f").alias(FILE_COL), F.spark_partition_id().cast("long").alias(BLOCK_COL)
    )
    keyed = sharding.assign_shards(df, per_shard)
    assert keyed.total_rows == 50
    got = {r["id"]: (r[SHARD_COL], r[INDEX_COL]) for r in keyed.df.collect()}
    assert got == {i: divmod(i, per_shard) for i in range(50)}
    assert set(keyed.df.columns) == {"id", SHARD_COL, INDEX_COL}


def test_rows_of_a_later_partition_alone_are_numbered_from_zero(spark):
    per_shard = 7
    df = (
        spark.range(0, 60, 1, 3)
        .where(F.col("id") >= 40)  # only the third partition keeps rows: their ids start at 2 << 33
        .select("id", F.lit("f").alias(FILE_COL), F.spark_partition_id().cast("long").alias(BLOCK_COL))
    )
    keyed = sharding.assign_shards(df, per_shard)
    assert keyed.total_rows == 20
    got = {r["id"]: (r[SHARD_COL], r[INDEX_COL]) for r in keyed.df.collect()}
    assert got == {i: divmod(i - 40, per_shard) for i in range(40, 60)}


def test_input_file_count_counts_what_spark_reads(spark, tmp_path):
    for name in ("b.txt", "a.txt", "c.txt"):
        (tmp_path / name).write_text("http://x/1\n")
    df = spark.read.text(str(tmp_path))
    assert sharding.input_file_count(df) == len(df.inputFiles()) == 3
    assert sharding.input_file_count(spark.range(3)) == 0


def test_only_row_ids_zero_to_n_minus_one_prove_a_single_first_partition():
    assert sharding.in_first_partition(0, None)
    assert sharding.in_first_partition(5, 4)
    assert not sharding.in_first_partition(5, (1 << 33) + 4)  # five rows, all in partition 1
    assert not sharding.in_first_partition(5, (1 << 33) + 1)  # three in partition 0, two in partition 1


def test_shards_not_asked_for_are_left_out_by_the_literal_map(spark):
    shard = (F.col("id") / 10).cast("long").alias(SHARD_COL)
    rows = sharding.shards_to_run(spark.range(40).select(shard, (F.col("id") % 10).alias(INDEX_COL)), [2]).collect()
    assert sorted(r[INDEX_COL] for r in rows) == list(range(10))
    assert {r[SHARD_COL] for r in rows} == {2}
    assert sharding.shards_to_run(spark.range(40).select(shard, F.lit(0).alias(INDEX_COL)), []).count() == 0
