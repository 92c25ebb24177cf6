import base64
import io
import os
import stat

import pytest

from video_emotion import security as ss


@pytest.fixture
def ring():
    r = ss.KeyRing(source="test")
    r.add(b"k" * 32)
    return r


def test_roundtrip_streams_in_chunks(tmp_path, ring):
    data = os.urandom(3 * 1000 + 17)
    src = tmp_path / "clip.mp4"
    src.write_bytes(data)
    dst = tmp_path / "clip.mp4.enc"
    with open(src, "rb") as s, open(dst, "wb") as d:
        ss.encrypt_stream(s, d, ring.current_key, "raw/clip.mp4", chunk=1000)
    assert data[:64] not in dst.read_bytes()
    chunks = list(ss.decrypt_stream(dst, ring, "raw/clip.mp4"))
    assert len(chunks) == 4 and b"".join(chunks) == data
    assert ss.decrypt_bytes(dst, ring, "raw/clip.mp4") == data


def test_empty_file_roundtrip(tmp_path, ring):
    ss.encrypt_bytes(b"", tmp_path / "e.enc", ring, "e")
    assert ss.decrypt_bytes(tmp_path / "e.enc", ring, "e") == b""


@pytest.fixture
def sealed(tmp_path, ring):
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(5000))
    ss.encrypt_file(src, tmp_path / "a.bin.enc", ring, "raw/a.bin")
    return tmp_path / "a.bin.enc"


def test_flipped_byte_names_the_file(sealed, ring):
    raw = bytearray(sealed.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    sealed.write_bytes(bytes(raw))
    with pytest.raises(ss.SecureStoreError, match=r"a\.bin\.enc: authentication failed"):
        ss.decrypt_bytes(sealed, ring, "raw/a.bin")


def test_truncation_is_detected(sealed, ring):
    for cut in (10, ss.HEADER.size + 2, len(sealed.read_bytes()) - 1):
        data = sealed.read_bytes()
        trunc = sealed.with_name(f"t{cut}.enc")
        trunc.write_bytes(data[:cut])
        with pytest.raises(ss.SecureStoreError, match="truncated"):
            ss.decrypt_bytes(trunc, ring, "raw/a.bin")


def test_dropping_the_final_chunk_is_detected(tmp_path, ring):
    with open(tmp_path / "m.enc", "wb") as d:
        ss.encrypt_stream(io.BytesIO(b"x" * 2500), d, ring.current_key, "m", chunk=1000)
    data = (tmp_path / "m.enc").read_bytes()
    last = data.rfind((500 + 16).to_bytes(4, "big"))
    (tmp_path / "m.enc").write_bytes(data[:last])
    with pytest.raises(ss.SecureStoreError, match="truncated"):
        ss.decrypt_bytes(tmp_path / "m.enc", ring, "m")


def test_swapped_files_are_detected(tmp_path, ring):
    for n in ("x", "y"):
        ss.encrypt_bytes(n.encode() * 100, tmp_path / f"{n}.enc", ring, f"raw/{n}.mp4")
    a, b = (tmp_path / "x.enc").read_bytes(), (tmp_path / "y.enc").read_bytes()
    (tmp_path / "x.enc").write_bytes(b)
    (tmp_path / "y.enc").write_bytes(a)
    with pytest.raises(ss.SecureStoreError, match="swapped"):
        ss.decrypt_bytes(tmp_path / "x.enc", ring, "raw/x.mp4")


def test_wrong_and_missing_key(sealed, tmp_path, monkeypatch):
    other = ss.KeyRing(source="elsewhere")
    other.add(b"o" * 32)
    with pytest.raises(ss.SecureStoreError, match="wrong key"):
        ss.decrypt_bytes(sealed, other, "raw/a.bin")
    monkeypatch.delenv(ss.ENV_KEY, raising=False)
    with pytest.raises(ss.SecureStoreError, match="keys init"):
        ss.load_keyring(tmp_path / "nokey")
    monkeypatch.setenv(ss.ENV_KEY, base64.b64encode(b"short").decode())
    with pytest.raises(ss.SecureStoreError, match="32 bytes"):
        ss.load_keyring(None)


def test_keyring_file_is_private_and_roundtrips(tmp_path, monkeypatch):
    monkeypatch.delenv(ss.ENV_KEY, raising=False)
    ring = ss.KeyRing(source="x")
    kid = ring.add(ss.new_key())
    path = tmp_path / "cfg" / "data.key"
    ss.save_keyring(ring, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = ss.load_keyring(path)
    assert loaded.current == kid and loaded.current_key == ring.current_key


def _encrypted_set(tmp_path, ring, n=4):
    files = []
    for i in range(n):
        p = tmp_path / f"f{i}.enc"
        ss.encrypt_bytes(f"payload {i}".encode() * 50, p, ring, f"raw/f{i}")
        files.append((p, f"raw/f{i}"))
    return files


def test_rotation_reencrypts_everything(tmp_path, monkeypatch):
    monkeypatch.delenv(ss.ENV_KEY, raising=False)
    key_file = tmp_path / "data.key"
    ring = ss.KeyRing(source="x")
    old = ring.add(ss.new_key())
    ss.save_keyring(ring, key_file)
    files = _encrypted_set(tmp_path, ring)
    out = ss.rotate(files, key_file)
    new_ring = ss.load_keyring(key_file)
    assert out == {"reencrypted": 4, "already_current": 0}
    assert new_ring.current != old and list(new_ring.keys) == [new_ring.current]
    for p, name in files:
        assert ss.key_of_file(p) == new_ring.current
        assert ss.decrypt_bytes(p, new_ring, name).startswith(b"payload")
    with pytest.raises(ss.SecureStoreError, match="wrong key"):
        ss.decrypt_bytes(files[0][0], ring, files[0][1])


def test_interrupted_rotation_keeps_every_file_readable_and_resumes(tmp_path, monkeypatch):
    monkeypatch.delenv(ss.ENV_KEY, raising=False)
    key_file = tmp_path / "data.key"
    ring = ss.KeyRing(source="x")
    ring.add(ss.new_key())
    ss.save_keyring(ring, key_file)
    files = _encrypted_set(tmp_path, ring)
    real_encrypt = ss.encrypt_bytes
    calls = {"n": 0}

    def crash_on_third(data, dst, r, name):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("power cut")
        real_encrypt(data, dst, r, name)

    from video_emotion.security import rotation

    monkeypatch.setattr(rotation, "encrypt_bytes", crash_on_third)  # the rotation's own writer
    with pytest.raises(KeyboardInterrupt):
        ss.rotate(files, key_file)
    saved = ss.load_keyring(key_file)
    assert len(saved.keys) == 2  # old and new key both kept until the rotation completes
    for p, name in files:
        assert ss.decrypt_bytes(p, saved, name).startswith(b"payload")
    assert not list(tmp_path.glob(".f*"))  # no temp files left behind
    monkeypatch.setattr(ss, "encrypt_bytes", real_encrypt)
    out = ss.rotate(files, key_file)
    assert out == {"reencrypted": 2, "already_current": 2}
    final = ss.load_keyring(key_file)
    assert list(final.keys) == [saved.current]
    for p, name in files:
        assert ss.decrypt_bytes(p, final, name).startswith(b"payload")


def test_plaintext_path_is_removed_after_use(sealed, ring):
    with ss.plaintext_path(sealed, ring, "raw/a.bin", suffix=".bin") as p:
        assert p.is_file() and stat.S_IMODE(p.stat().st_mode) == 0o600
        kept = p
    assert not kept.exists()
    with pytest.raises(ss.SecureStoreError):
        with ss.plaintext_path(sealed, ring, "raw/other.bin") as p:
            pass


def test_a_tampered_chunk_size_is_refused_before_any_large_allocation(sealed, ring):
    """The header is authenticated only with the first chunk: a chunk size raised to 4 GiB (and a
    matching chunk length) must fail on the header, not make the reader allocate gigabytes."""
    import struct
    import tracemalloc

    raw = bytearray(sealed.read_bytes())
    struct.pack_into(">I", raw, 14, 0xFFFFFFFF)  # chunk_size, after magic (6) and key id (8)
    struct.pack_into(">I", raw, ss.HEADER.size, 0xFFFFFFF0)  # chunk 0's ciphertext length
    sealed.write_bytes(bytes(raw))
    tracemalloc.start()
    try:
        with pytest.raises(ss.SecureStoreError, match=r"a\.bin\.enc: corrupt header \(chunk size 4294967295"):
            ss.decrypt_bytes(sealed, ring, "raw/a.bin")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB allocated while reading a tampered header"
    for bad in (0, ss.MAX_CHUNK + 1):
        with pytest.raises(ValueError, match="chunk size"):
            ss.encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), ring.current_key, "n", chunk=bad)


def test_without_memory_storage_plaintext_goes_to_a_private_folder_and_says_so(sealed, ring, monkeypatch, caplog):
    from video_emotion.security import scratch

    monkeypatch.setattr(scratch, "_memory_dir", lambda: None)  # a system without /dev/shm
    caplog.set_level("WARNING", logger="video_emotion.security.scratch")
    with ss.plaintext_path(sealed, ring, "raw/a.bin", suffix=".bin") as p:
        assert not str(p).startswith("/dev/shm/")
        assert stat.S_IMODE(p.stat().st_mode) == 0o600 and stat.S_IMODE(p.parent.stat().st_mode) == 0o700
        assert sorted(os.listdir(p.parent)) == [p.name]  # a folder of its own, nobody else's files
        kept = p
    assert not kept.exists() and not kept.parent.exists()
    assert "no memory-backed storage (/dev/shm)" in caplog.text and "0700" in caplog.text
    with ss.scratch_dir() as d:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert caplog.text.count("no memory-backed storage") == 2  # said every time, not once per process
