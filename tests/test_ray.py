"""aecompress on a real Ray cluster: a head and a second node on the loopback address, the CLI
run against it (a worker killed mid-run), files byte-identical to the local commands'.

The cluster takes its own temporary folder and ports; every process it starts is found by a
marker in the environment of `ray start` (and their children), and only those are stopped:
`ray stop` would stop every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
from click.testing import CliRunner
from PIL import Image

import aecompress.ray
from aecompress import codec, container
from aecompress.cli import main
from aecompress.ray_job import list_inputs, read_manifest

from conftest import smooth_image

RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """`nodes` Ray nodes of `cpus` CPUs each on 127.0.0.1, in their own temp folder."""

    def __init__(self, temp_dir: Path, nodes: int = 2, cpus: int = 1):
        self.temp_dir, self.marker = temp_dir, f"AECOMPRESS_TEST_CLUSTER={uuid.uuid4().hex}"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        env = {**os.environ, self.marker.split("=")[0]: self.marker.split("=")[1], "RAY_USAGE_STATS_ENABLED": "0"}
        common = ["--num-cpus", str(cpus), "--disable-usage-stats", "--object-store-memory", str(200 * 2**20),
                  "--dashboard-agent-listen-port"]
        head = ["--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port), "--temp-dir", str(temp_dir),
                "--include-dashboard=false", "--dashboard-port", str(free_port())]
        try:
            for args in [head] + [["--address", self.address]] * (nodes - 1):
                subprocess.run([str(RAY), "start", *args, *common, str(free_port())], env=env, check=True,
                               capture_output=True, timeout=120)
        except BaseException:
            self.stop()
            raise

    def processes(self) -> dict[int, str]:
        """pid -> command line of every process of this cluster: those that inherited the marker,
        and their children (Ray's workers rewrite their environment with their title)."""
        parent, cmdline, roots = {}, {}, set()
        for d in Path("/proc").iterdir():
            try:
                state, ppid = (d / "stat").read_text().rsplit(")", 1)[1].split()[:2]
                if state == "Z":  # exited, waiting for a parent that may never reap it
                    continue
                parent[int(d.name)] = int(ppid)
                cmdline[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if self.marker.encode() in (d / "environ").read_bytes().split(b"\0"):
                    roots.add(int(d.name))
            except (ValueError, OSError):
                continue
        found, grew = set(roots), True
        while grew:
            more = {p for p, pp in parent.items() if pp in found} - found
            found |= more
            grew = bool(more)
        return {p: cmdline[p] for p in found if p in cmdline}

    def actors(self, name: str) -> list[int]:
        return [p for p, cmd in self.processes().items() if cmd.startswith("ray::MapWorker") and name in cmd]

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
            pids = self.processes()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while pids and time.monotonic() < deadline and self.processes():
                time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("r"))  # a short path: Ray's socket paths must fit in 107 bytes
    try:
        yield c
    finally:
        c.stop()


def images(folder: Path) -> dict[str, Image.Image]:
    """Mixed sizes and modes (RGB, L, RGBA, LA, P with transparency, JPEG), one in a subfolder,
    and two bad files."""
    alpha = lambda h, w: (np.add.outer(np.arange(h), np.arange(w)) * 255 // (h + w)).astype(np.uint8)
    made = {
        "rgb.png": Image.fromarray(smooth_image(64, 96, 1)),
        "gray.png": Image.fromarray(smooth_image(48, 80, 2)[..., 0]),
        "sub/alpha.png": Image.fromarray(np.dstack([smooth_image(70, 50, 3), alpha(70, 50)]), "RGBA"),
        "la.png": Image.fromarray(np.dstack([smooth_image(33, 47, 4)[..., 1], alpha(33, 47)]), "LA"),
        "tiny.png": Image.fromarray(smooth_image(1, 1, 5)),
        "photo.jpg": Image.fromarray(smooth_image(100, 130, 6)),
        "palette.png": Image.fromarray(smooth_image(40, 64, 7)).quantize(16),
    }
    made["palette.png"].info["transparency"] = 0
    for i in range(6):  # enough work that a worker can be killed while others remain
        made[f"more{i}.png"] = Image.fromarray(smooth_image(96 + 16 * i, 128, 10 + i))
    for name, image in made.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        image.save(folder / name, **({"transparency": 0} if name == "palette.png" else {}))
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "cut.png").write_bytes((folder / "rgb.png").read_bytes()[:300])
    return made


def cli(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aecompress", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def local(*args) -> None:
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output


def manifest(out: Path) -> dict[str, dict]:
    return {Path(row["path"]).name: row for row in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}


@pytest.mark.cluster
def test_cluster_encode_is_byte_identical_survives_a_killed_worker_and_resumes(cluster, tmp_path):
    src, out, ref = tmp_path / "in", tmp_path / "out", tmp_path / "local"
    src.mkdir()
    made = images(src)
    job = subprocess.Popen([sys.executable, "-m", "aecompress", "encode", str(src), "-d", str(out), "--verify",
                            "--ray", cluster.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, deadline = None, time.monotonic() + 120
    while job.poll() is None and time.monotonic() < deadline:
        visible = [p for p in out.rglob("*") if p.is_file() and ".aecompress-tmp" not in p.parts]
        for p in visible:  # whatever is visible in OUT is whole
            assert p.suffix == ".aec" or p.name == "manifest.jsonl", p
            if p.suffix == ".aec":
                container.unpack(p.read_bytes())
        workers = cluster.actors("Encoder")
        if killed is None and visible and len(workers) == 2:
            killed, done_then = workers[0], len(visible)
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    _, stderr = job.communicate(timeout=60)
    assert killed is not None and done_then < len(made), "the worker was killed mid-run"
    assert job.returncode == 1, stderr  # the two bad files
    assert stderr.count("aecompress: error:") == 2 and "15 files, 13 done, 2 failed" in stderr, stderr

    rows = manifest(out)
    assert sorted(n for n, r in rows.items() if r["status"] != "ok") == ["broken.png", "cut.png"]
    assert "not a readable image" in rows["broken.png"]["error"] and "\n" not in rows["cut.png"]["error"]
    local("encode", *[src / n for n in made], "-d", ref)
    for name in made:
        row, data = rows[Path(name).name], (out / name).with_suffix(".aec").read_bytes()
        assert data == (ref / Path(name).name).with_suffix(".aec").read_bytes(), name
        assert row["output"] == str(Path(name).with_suffix(".aec")) and row["bytes_out"] == len(data)
        assert row["psnr"] > 20 and row["quality"] == 60 and row["bpp"] > 0
    visible = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}  # no temporary files left
    assert visible == {str(Path(n).with_suffix(".aec")) for n in made} | {"manifest.jsonl"}

    (out / "rgb.aec").unlink()  # resumable: only what is not done is done again
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.aec")}
    again = cli("encode", src, "-d", out, "--verify", "--ray", cluster.address)
    assert again.returncode == 1, again.stderr
    assert "12 of 15 files already done" in again.stderr and "3 files, 1 done, 2 failed" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.aec") if p in before} == before
    assert (out / "rgb.aec").read_bytes() == (ref / "rgb.aec").read_bytes()
    assert len(manifest(out)) == 15

    back, local_back = tmp_path / "back", tmp_path / "local-back"  # decode: from a file:// URL
    r = cli("decode", f"file://{out}", "-d", back, "--ray", cluster.address)
    assert r.returncode == 0, r.stderr
    local("decode", *out.rglob("*.aec"), "-d", local_back)
    for name in made:
        png = Path(name).with_suffix(".png")
        assert (back / png).read_bytes() == (local_back / png.name).read_bytes(), name
    assert Image.open(back / "sub/alpha.png").mode == "RGBA" and Image.open(back / "gray.png").mode == "L"


@pytest.mark.cluster
def test_map_batches_with_the_encoder_class_on_the_cluster(cluster, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    made = images(src)
    paths = sorted(str(src / n) for n in made)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        ds = ray.data.from_items([{"path": p} for p in paths])
        ds = ds.map_batches(aecompress.ray.Encoder, fn_constructor_kwargs={"quality": 75},
                            compute=ray.data.ActorPoolStrategy(size=2), batch_size=4, batch_format="numpy")
        rows = {row["path"]: row for row in ds.take_all()}
    finally:
        ray.shutdown()
    assert sorted(rows) == paths
    for p in paths:
        assert rows[p]["status"] == "ok" and rows[p]["aec"] == aecompress.encode(p, 75)


def test_the_encoder_is_a_batch_function_whose_bad_rows_are_rows(tmp_path):
    """Without Ray: pandas in, pandas out; a dict of arrays in, one out; errors as rows."""
    (tmp_path / "a.png").write_bytes(b"")
    Image.fromarray(smooth_image(40, 56)).save(tmp_path / "b.png")
    good = (tmp_path / "b.png").read_bytes()
    encoder = aecompress.ray.Encoder(quality=70, verify=True)
    df = encoder(pd.DataFrame({"bytes": [b"junk", good], "path": ["x.png", "b.png"]}))
    assert list(df["status"]) == ["error", "ok"] and df["error"][0].startswith("x.png: not a readable image")
    assert df["aec"][1] == aecompress.encode(good, 70) and df["psnr"][1] > 20 and df["bytes_in"][1] == len(good)
    batch = encoder({"path": np.array([str(tmp_path / "a.png"), str(tmp_path / "b.png")])})
    assert isinstance(batch["aec"], np.ndarray) and list(batch["status"]) == ["error", "ok"]
    assert "empty file" in batch["error"][0]
    out = tmp_path / "out"
    back = aecompress.ray.Decoder(out_dir=str(out))(pd.DataFrame({"bytes": [df["aec"][1]], "name": ["b.png"]}))
    assert back["output"][0] == "b.png" and Image.open(out / "b.png").size == (56, 40)
    assert codec.decode(df["aec"][1]).size == (56, 40)


def test_help_and_local_runs_import_no_ray(tmp_path):
    Image.fromarray(smooth_image(16, 16)).save(tmp_path / "a.png")
    code = ("import sys; from aecompress.cli import main\n"
            "try: main(sys.argv[1:])\nexcept SystemExit: pass\n"
            "assert 'ray' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    for args in (["--help"], ["encode", "--help"], ["encode", str(tmp_path / "a.png"), "-Q"]):
        subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, timeout=120)
    r = cli("encode", tmp_path / "a.png", "-o", tmp_path / "b.aec", "--ray", "auto")
    assert r.returncode == 2 and "--ray" in r.stderr and "-d OUT" in r.stderr


def test_inputs_are_listed_from_folders_globs_and_urls_with_their_layout(tmp_path):
    for name in ("a.png", "sub/b.jpg", "sub/deep/c.png", ".hidden/d.png", "notes.txt", "out/e.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    listed = list_inputs([str(tmp_path)], {".png", ".jpg"}, skip=str(tmp_path / "out"))
    assert [r for _, r in listed] == ["a.png", "sub/b.jpg", "sub/deep/c.png"]
    assert [p for p, _ in listed][0] == str(tmp_path / "a.png")  # absolute: workers have other working folders
    assert list_inputs([f"file://{tmp_path}/sub/*/*.png"], set()) == [
        (str(tmp_path / "sub/deep/c.png"), "deep/c.png")]
    assert list_inputs([str(tmp_path / "sub/b.jpg")], set()) == [(str(tmp_path / "sub/b.jpg"), "b.jpg")]
    with pytest.raises(FileNotFoundError, match="no such file"):
        list_inputs([str(tmp_path / "none")], set())


def test_a_stopped_jobs_journal_counts_as_done_and_its_cut_line_is_ignored(tmp_path):
    row = dict.fromkeys(aecompress.ray.FIELDS) | {"status": "ok"}
    (tmp_path / "manifest.jsonl").write_text(json.dumps(row | {"path": "/a", "status": "error"}) + "\n")
    (tmp_path / ".aecompress-tmp").mkdir()
    (tmp_path / ".aecompress-tmp" / "journal.jsonl").write_text(
        json.dumps(row | {"path": "/a", "output": "a.aec"}) + "\n" + json.dumps(row | {"path": "/b"})[:20])
    assert read_manifest(tmp_path) == {"/a": row | {"path": "/a", "output": "a.aec"}}
