import functools
import hashlib
import http.server
import threading

import pytest

from isanet.cli import main
from isanet.io.download import (
    DownloadError,
    download,
    download_url,
    sha256_prefix_from_name,
)
from isanet.io.outputs import LEDGER


@pytest.fixture()
def server(tmp_path):
    """A static HTTP server on 127.0.0.1 serving tmp_path/served; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def publish(served, payload: bytes, stem: str = "weights") -> str:
    """Write payload under a name carrying its own sha256 prefix, as OpenMMLab names files."""
    name = f"{stem}_20210901-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    (served / name).write_bytes(payload)
    return name


def test_prefix_is_read_from_openmmlab_names():
    assert sha256_prefix_from_name("isanet_r50-d8_512x1024_40k_cityscapes_20210901_054739-981bd763.pth") == "981bd763"
    assert sha256_prefix_from_name("model.pth") is None


def test_download_verifies_and_writes_the_file(server, tmp_path):
    base, served = server
    payload = b"\x00checkpoint bytes\x01" * 50_000
    name = publish(served, payload)
    path = download_url(f"{base}/{name}", tmp_path / "out", progress=False)
    assert path == tmp_path / "out" / name and path.read_bytes() == payload
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name != LEDGER] == [name]
    (served / name).unlink()  # a second call reuses the verified file without the network
    assert download_url(f"{base}/{name}", tmp_path / "out", progress=False) == path


def test_hash_mismatch_leaves_nothing_behind(server, tmp_path):
    base, served = server
    (served / "weights_20210901-00000000.pth").write_bytes(b"not the published content")
    with pytest.raises(DownloadError, match=r"sha256 [0-9a-f]{8}… does not match the expected prefix 00000000"):
        download_url(f"{base}/weights_20210901-00000000.pth", tmp_path / "out", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_zoo_download_checks_the_zoo_hash_even_from_a_mirror(server, tmp_path):
    base, served = server
    name = publish(served, b"some other model")
    with pytest.raises(DownloadError, match="expected prefix 981bd763"):
        download("isanet_r50-d8_4xb2-40k_cityscapes-512x1024", tmp_path / "out", url=f"{base}/{name}",
                 progress=False)


def test_unreachable_server_and_missing_file(server, tmp_path):
    base, _ = server
    with pytest.raises(DownloadError, match=r"absent-12345678\.pth failed: HTTP 404 "):
        download_url(f"{base}/absent-12345678.pth", tmp_path, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["served"]
    missing = (tmp_path / "nowhere" / "w-12345678.pth").as_uri()  # urllib's "<urlopen error [Errno 2] ...>" in words
    with pytest.raises(DownloadError, match=f"^download of {missing} failed: no such file or directory$"):
        download_url(missing, tmp_path / "out", progress=False)


def test_an_address_urllib_cannot_fetch_is_a_usage_error(tmp_path, capsys):
    assert main(["download", "isanet_r50-d8_512x1024_40k_cityscapes", "--dir", str(tmp_path), "--url", "notaurl"]) == 2
    assert capsys.readouterr().err.strip() == (  # was exit 1, "unknown url type: 'notaurl'"
        "isanet download: error: --url notaurl: expected an http://, https:// or file:// address")


def test_cli_download(server, tmp_path, capsys):
    base, served = server
    name = publish(served, b"payload" * 1000)
    assert main(["download", "isanet_r50-d8_512x1024_40k_cityscapes", "--dir", str(tmp_path / "ckpt"),
                 "--url", f"{base}/{name}"]) == 1
    assert "does not match the expected prefix 981bd763" in capsys.readouterr().err
    assert not (tmp_path / "ckpt" / name).exists()


def test_connection_dropped_mid_file_leaves_no_partial_file(tmp_path):
    class Truncating(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 400)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Truncating)
    threading.Thread(target=httpd.handle_request, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/w-12345678.pth"
    with pytest.raises(DownloadError, match="(connection closed after 400 of 1000 bytes|failed)"):
        download_url(url, tmp_path / "out", progress=False)
    httpd.server_close()
    assert list((tmp_path / "out").iterdir()) == []


def test_a_name_without_a_prefix_needs_one(tmp_path):
    with pytest.raises(ValueError, match=r"model\.pth: its file name carries no sha256 prefix .* pass sha256_prefix"):
        download_url("http://127.0.0.1:9/model.pth", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_downloads_partial_file_is_removed_by_the_next_download(server, tmp_path):
    """torch writes DST.<32 hex>.partial beside DST, our temporary: a process killed mid-transfer leaves one,
    and the next download into the folder removes it once its writer is gone."""
    base, served = server
    name = publish(served, b"weights" * 100)
    out = tmp_path / "out"
    out.mkdir()
    dead_pid = 2**22 + 1  # above the largest pid Linux can hand out (PID_MAX_LIMIT, 2**22): no process has it
    stale = out / f".{name}.isanet-tmp-{dead_pid}-0123abcd.part.{'f' * 32}.partial"
    stale.write_bytes(b"half a file")
    assert download_url(f"{base}/{name}", out, progress=False).read_bytes() == b"weights" * 100
    assert [p.name for p in out.iterdir() if p.name != LEDGER] == [name]
