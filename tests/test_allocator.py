from chromata import allocator


def test_worker_tunables_keep_large_blocks_mapped_and_respect_the_operators():
    mine = allocator.tunables()
    assert f"glibc.malloc.mmap_threshold={allocator.MMAP_THRESHOLD}" in mine.split(":")
    assert f"glibc.malloc.trim_threshold={allocator.TRIM_THRESHOLD}" in mine.split(":")
    theirs = allocator.worker_env({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1:glibc.malloc.arena_max=2"})
    pairs = dict(p.split("=") for p in theirs["GLIBC_TUNABLES"].split(":"))
    assert pairs == {
        "glibc.malloc.mmap_threshold": str(allocator.MMAP_THRESHOLD),
        "glibc.malloc.trim_threshold": "1",  # the operator's setting wins
        "glibc.malloc.arena_max": "2",
    }
