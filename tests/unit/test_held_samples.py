"""Finished samples held behind a slow head row: an abandoned shard gives their room back."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from spark_img2ds.config import Config
from spark_img2ds.dataset.columns import INDEX_COL, SUCCESS, URL
from spark_img2ds.dataset.stats import ShardStats
from spark_img2ds.worker.sample import Sample, pool_size
from spark_img2ds.worker.shards import MAX_HELD_BYTES, WINDOW_PER_THREAD, OpenShard, run_shards

BIG = b"x" * (MAX_HELD_BYTES // 2 + 1)  # two of these fill the room for finished samples


class _UnwritableFirstShard(OpenShard):
    """Shard 0 cannot store its rows (a storage error at its head row); the others are written as usual."""

    def write(self, i: int, sample: Sample) -> bool:
        if self.shard_id == 0:
            raise OSError("storage refused the write")
        return super().write(i, sample)


def _make_sample(url: str | None, expected_hash=None, bbox=None) -> Sample:
    if url == "slow":
        time.sleep(0.5)  # the head row: the big samples behind it finish and are held
    return Sample(SUCCESS, image=BIG if url == "big" else b"small", width=1, height=1, nbytes=1)


def test_an_abandoned_shard_frees_the_room_its_held_samples_took(tmp_path):
    cfg = Config.from_dict(
        dict(
            url_list="unused",
            output_folder=str(tmp_path / "out"),
            output_format="dummy",
            thread_count=1,
            number_sample_per_shard=100,
        )  # fmt: skip
    )
    window = pool_size(cfg) * WINDOW_PER_THREAD
    first = ["slow"] + ["big"] * (window + 5)  # more rows than the window: the rest wait for room
    tables = [
        (0, pa.table({INDEX_COL: list(range(len(first))), URL: first})),
        (1, pa.table({INDEX_COL: [0, 1], URL: ["small", "small"]})),
    ]
    with ThreadPoolExecutor(pool_size(cfg)) as pool:
        outcomes = dict(run_shards(cfg, tables, _make_sample, pool, open_shard=_UnwritableFirstShard))
    assert isinstance(outcomes[0], OSError)
    assert isinstance(outcomes.get(1), ShardStats), outcomes  # shard 1 was downloaded after shard 0 was dropped
    assert outcomes[1].successes == 2
