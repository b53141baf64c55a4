import hashlib
import io

import pytest

from berth.core.errors import Corrupt
from berth.core.oci.content import ContentStore, check_digest


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_put_verifies_and_stores(tmp_path):
    store = ContentStore(tmp_path)
    d, size = store.put(io.BytesIO(b"hello"), expected=digest(b"hello"))
    assert (d, size) == (digest(b"hello"), 5)
    assert store.read(d) == b"hello"


def test_mismatch_stores_nothing(tmp_path):
    store = ContentStore(tmp_path)
    with pytest.raises(Corrupt, match="digest mismatch"):
        store.put(io.BytesIO(b"evil"), expected=digest(b"good"))
    assert list(store.dir.iterdir()) == []


def test_size_mismatch_stores_nothing(tmp_path):
    store = ContentStore(tmp_path)
    with pytest.raises(Corrupt, match="size mismatch"):
        store.put(io.BytesIO(b"abc"), expected_size=4)
    assert list(store.dir.iterdir()) == []


def test_crash_mid_write_leaves_only_a_temporary(tmp_path):
    store = ContentStore(tmp_path)

    class Dies(io.RawIOBase):
        def readinto(self, b):
            raise KeyboardInterrupt  # stands for a kill mid-write

    with pytest.raises(KeyboardInterrupt):
        store.put(Dies())
    assert store.digests() == []
    assert not any(p for p in store.dir.iterdir())


@pytest.mark.parametrize("bad", ["sha256:../x", "sha256:" + "a" * 63, "md5:" + "a" * 64, "sha256:" + "A" * 64, ""])
def test_bad_digests_refused(bad):
    with pytest.raises(Corrupt, match="invalid digest"):
        check_digest(bad)


def test_stale_temporaries_cleaned(tmp_path):
    import os

    store = ContentStore(tmp_path)
    stale = store.dir / ".tmp-abc"
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))
    fresh = store.dir / ".tmp-def"
    fresh.write_bytes(b"live writer")
    assert store.clean_temporary() == 1
    assert not stale.exists() and fresh.exists()
