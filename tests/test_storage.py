import pytest

from chromata.archive import open_storage
from chromata.archive.local import LocalStorage
from chromata.archive.s3 import S3Storage
from chromata.archive.storage import KeyRefused, ReadOnlyStorage, safe_key
from chromata.errors import StorageError


@pytest.mark.parametrize(
    "key", ["../x.jpg", "a/../../x.jpg", "..", "", "a\x00b", "/a/b.jpg", "a/./b.jpg", "a//b.jpg", "a/x/../b.jpg"]
)
def test_safe_key_refuses_escapes_and_aliases(key):
    # taken literally, these would escape the root or name a different object than the one listed
    with pytest.raises(KeyRefused):
        safe_key(key)


@pytest.mark.parametrize("key", ["a/b.jpg", "a b/ünï %41.jpg", "a\\b.jpg", "x..y/..z.jpg"])
def test_safe_key_keeps_keys_literally(key):
    assert safe_key(key) == key


def test_source_is_read_only(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"scan")
    src = ReadOnlyStorage(LocalStorage(tmp_path))
    assert src.read("a.jpg") == b"scan"
    for write in (
        lambda: src.write_atomic("a.jpg", b"x"),
        lambda: src.write_file("a.jpg", tmp_path / "a.jpg"),
        lambda: src.create_once("b.jpg", b"x"),
        src.check_writable,
    ):
        with pytest.raises(StorageError, match="read-only"):
            write()
    assert (tmp_path / "a.jpg").read_bytes() == b"scan"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]


def test_open_storage_dispatch(tmp_path):
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    s3 = open_storage("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Storage)
    assert s3.uri("a.jpg") == "s3://bucket/some/prefix/a.jpg"
    with pytest.raises(StorageError):
        open_storage("ftp://host/x")


def test_local_list_is_sorted_recursive_and_never_follows_outside_symlinks(tmp_path):
    root = tmp_path / "src"
    (root / "b").mkdir(parents=True)
    (root / "b" / "2.jpg").write_bytes(b"2")
    (root / "a.jpg").write_bytes(b"1")
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"secret")
    (root / "link.jpg").symlink_to(outside)
    storage = LocalStorage(root)
    keys = [o.key for o in storage.list()]
    assert keys == ["a.jpg", "b/2.jpg", "link.jpg"] == sorted(keys)  # listed, so that the run records it …
    with pytest.raises(KeyRefused, match="outside the source"):
        storage.read("link.jpg")  # … but never followed
    with pytest.raises(KeyRefused):
        storage.local_path("link.jpg")


def test_local_write_atomic_and_read(tmp_path):
    st = LocalStorage(tmp_path / "dst")
    st.write_atomic("x/y.bin", b"hello")
    assert st.read("x/y.bin") == b"hello"
    assert st.exists("x/y.bin")
    st.write_atomic("x/y.bin", b"again")
    assert st.read("x/y.bin") == b"again"
    assert [p.name for p in (tmp_path / "dst" / "x").iterdir()] == ["y.bin"]  # no temp files left


def test_local_checks(tmp_path):
    with pytest.raises(StorageError, match="not found"):
        LocalStorage(tmp_path / "missing").check_readable()
    LocalStorage(tmp_path / "new").check_writable()
    assert (tmp_path / "new").is_dir()


def test_s3_round_trip_over_http(moto_endpoint, s3):
    s3.create_bucket(Bucket="st-roundtrip")
    st = S3Storage("st-roundtrip", "coll/a", endpoint_url=moto_endpoint)
    st.check_readable()
    st.write_atomic("x/1.jpg", b"one")
    st.write_atomic("0.jpg", b"zero")
    s3.put_object(Bucket="st-roundtrip", Key="coll/ab/not-mine.jpg", Body=b"x")  # sibling prefix
    listed = list(st.list())
    assert [o.key for o in listed] == ["0.jpg", "x/1.jpg"]
    assert listed[0].size == 4 and listed[0].etag
    assert st.read("x/1.jpg") == b"one"
    assert st.exists("0.jpg") and not st.exists("nope.jpg")


def test_s3_paginates(moto_endpoint, s3):
    s3.create_bucket(Bucket="st-many")
    for i in range(1005):  # more than one page of list_objects_v2
        s3.put_object(Bucket="st-many", Key=f"p/{i:05d}.jpg", Body=b"")
    keys = [o.key for o in S3Storage("st-many", "p", endpoint_url=moto_endpoint).list()]
    assert len(keys) == 1005 and keys == sorted(keys)


def test_s3_multipart_for_large_objects(moto_endpoint, s3):
    s3.create_bucket(Bucket="st-big")
    st = S3Storage("st-big", "", endpoint_url=moto_endpoint)
    data = bytes(range(256)) * (17 * 1024 * 4)  # 17 MiB: above the multipart threshold
    st.write_atomic("big.tif", data)
    assert "-" in s3.head_object(Bucket="st-big", Key="big.tif")["ETag"]  # multipart ETag
    assert st.read("big.tif") == data


def test_s3_missing_bucket_is_a_clear_error(moto_endpoint):
    st = S3Storage("no-such-bucket", "", endpoint_url=moto_endpoint)
    with pytest.raises(StorageError, match="bucket not found: s3://no-such-bucket"):
        st.check_readable()


def test_local_create_once(tmp_path):
    st = LocalStorage(tmp_path)
    assert st.create_once("m/f.parquet", b"first") is True
    assert st.create_once("m/f.parquet", b"second") is False
    assert st.read("m/f.parquet") == b"first"
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["f.parquet"]


def test_s3_conditional_create_once(moto_endpoint, s3):
    s3.create_bucket(Bucket="st-once")
    st = S3Storage("st-once", "p", endpoint_url=moto_endpoint)
    assert st.create_once("frag.parquet", b"first") is True
    assert st.create_once("frag.parquet", b"second") is False  # If-None-Match: * refused by the server
    assert st.read("frag.parquet") == b"first"
