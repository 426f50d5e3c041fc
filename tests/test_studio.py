"""ganforge studio, server level: run status, followed metrics, the playground and the security
rules, through Starlette's TestClient (no real socket, no browser)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from studio_helpers import age, bomb_png, png_bytes, real_runs, write_json  # noqa: E402

from ganforge.studio import create_app  # noqa: E402
from ganforge.studio.demo import append_metrics, metrics_row, write_fake_run  # noqa: E402
from ganforge.studio.runs import NotFound, safe_path  # noqa: E402
from ganforge.studio.server import serve_in_thread, startup_message  # noqa: E402

TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studio") / "runs"
    root.mkdir()
    write_fake_run(root, "00001-done", steps=40, result="done")
    write_fake_run(root, "00002-int", steps=40, result="interrupted")
    div = write_fake_run(root, "00003-div", steps=40, result=None)
    with open(div / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 41, "loss/D": "nan", "loss/G": 1.0}) + "\n")
    write_fake_run(root, "00004-live", steps=40, result=None)
    with open(root / "00004-live" / "metrics.jsonl", "a") as f:  # a NaN that was rolled back: still running
        f.write(json.dumps({"step": 41, "loss/D": "nan"}) + "\n")
        f.write(json.dumps({"step": 40, "event": "loss/D became NaN/Inf by step 41: rolled back to ckpt-0000040"}) + "\n")
    age(write_fake_run(root, "00005-dead", steps=40, result=None), 3600)
    write_fake_run(root / "bench", "00006-nested", steps=20, preset="wgan-gp")
    real = real_runs(root)
    (root / "notes").mkdir()  # not a run: no config.yaml / run.json
    return root


@pytest.fixture(scope="module")
def client(root):
    app = create_app(root, token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def runs_by_id(client) -> dict:
    r = client.get("/api/runs")
    assert r.status_code == 200
    return {x["id"]: x for x in r.json()["runs"]}


def decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


# -- runs list and status ----------------------------------------------------------------------------

def test_runs_list_status_step_and_images(client, root, launched):
    runs = runs_by_id(client)
    assert set(runs) >= {"00001-done", "00002-int", "00003-div", "00004-live", "00005-dead", "bench/00006-nested"}
    assert "notes" not in runs
    assert {k: runs[k]["status"] for k in ("00001-done", "00002-int", "00003-div", "00004-live", "00005-dead")} == {
        "00001-done": "finished", "00002-int": "interrupted", "00003-div": "diverged", "00004-live": "running",
        "00005-dead": "stopped"}
    done = runs["00001-done"]
    assert done["step"] == 40 and done["preset"] == "dcgan" and done["total_steps"] == 40
    assert done["images_seen"] == 40 * 64  # kimg 2.56 in the last line
    assert runs["00004-live"]["step"] == 41
    assert done["newest_sample"] == "/files/00001-done/samples/step-0000040.png"
    assert client.get(done["newest_sample"]).status_code == 200
    assert runs["bench/00006-nested"]["preset"] == "wgan-gp"
    assert "loss/D" in runs["00003-div"]["detail"]


def test_status_follows_the_folder(tmp_path):
    root = tmp_path / "runs"
    run = write_fake_run(root, "00000-x", steps=10, result=None)
    app = create_app(root, token=TOKEN, stale_after=60)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert runs_by_id(c)["00000-x"]["status"] == "running"  # written just now
        age(run, 120)
        assert runs_by_id(c)["00000-x"]["status"] == "stopped"  # silent for longer than stale_after
        write_json(run / "result.json", {"reason": "time budget"})
        s = runs_by_id(c)["00000-x"]
        assert (s["status"], s["detail"]) == ("finished", "time budget")
        time.sleep(0.02)
        append_metrics(run, [11, 12])  # resumed: a new session writes after the old result
        s = runs_by_id(c)["00000-x"]
        assert (s["status"], s["step"]) == ("running", 12)


# -- metrics ----------------------------------------------------------------------------------------

def test_metrics_are_read_incrementally(tmp_path):
    root = tmp_path / "runs"
    run = write_fake_run(root, "00000-m", steps=5, result=None)
    app = create_app(root, token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        j = c.get("/api/metrics", params={"id": "00000-m", "since": 0}).json()
        assert j["rows"] == 5 and j["step"] == [1, 2, 3, 4, 5]
        import random
        rng = random.Random(0)  # the same stream of made-up values as write_fake_run's
        expect = [metrics_row(s, rng) for s in range(1, 6)]
        assert j["series"]["loss/G"] == pytest.approx([e["loss/G"] for e in expect])
        assert "kimg" not in j["series"] and "time" not in j["series"]
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": 6, "loss/G": 0.5, "eval/fid": 12.0}) + "\n")
            f.write(json.dumps({"step": 6, "event": "loss/D became NaN/Inf: rolled back"}) + "\n")
            f.write(json.dumps({"step": 7, "loss/G": "inf"}) + "\n")
            f.write('{"step": 8, "loss/G": 0.2')  # a line still being written
        j = c.get("/api/metrics", params={"id": "00000-m", "since": 5}).json()
        assert (j["rows"], j["start"], j["step"]) == (7, 5, [6, 7])
        assert j["series"]["loss/G"] == [0.5, None]  # inf is not JSON: null
        assert j["series"]["eval/fid"] == [12.0, None]
        assert j["events"] == [{"step": 6, "kind": "event", "text": "loss/D became NaN/Inf: rolled back"}]
        full = c.get("/api/metrics", params={"id": "00000-m", "since": 0}).json()
        assert full["series"]["eval/fid"] == [None] * 5 + [12.0, None]  # back-filled for older rows
        with open(run / "metrics.jsonl", "a") as f:
            f.write("}\n")
        assert c.get("/api/metrics", params={"id": "00000-m", "since": 7}).json()["step"] == [8]
        (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss/G": 3.0}) + "\n")  # a new file
        j = c.get("/api/metrics", params={"id": "00000-m", "since": 8}).json()
        assert j["reset"] and j["step"] == [1] and j["series"]["loss/G"] == [3.0]


def test_run_detail_checkpoints_samples_events(client, root):
    run = root / "00001-done"
    for name in ("checkpoints/ckpt-0000020", "checkpoints/ckpt-0000040", "checkpoints/best/ckpt-0000030",
                 "checkpoints/ckpt-notes"):
        (run / name).mkdir(parents=True, exist_ok=True)
    info = json.loads((run / "run.json").read_text())
    info["data"] = "folder /x: 10 images 1x28x28, unlabelled, 3 unreadable files skipped"
    write_json(run / "run.json", info)
    d = client.get("/api/run", params={"id": "00001-done"}).json()
    assert [(c["step"], c["best"]) for c in d["checkpoints"]] == [(20, False), (30, True), (40, False)]
    assert [s["step"] for s in d["samples"]] == [10, 20, 30, 40]
    assert d["events"][0] == {"step": 0, "kind": "skipped files", "text": "3 unreadable data files skipped"}
    assert "preset: dcgan" in d["config_text"]
    d = client.get("/api/run", params={"id": "00002-int"}).json()
    assert d["events"][-1]["kind"] == "interrupted"


# -- security ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "/files/..%2f..%2fetc%2fpasswd", "/files/%2e%2e/%2e%2e/etc/passwd", "/files//etc/passwd",
    "/files/00001-done/..%2f..%2f..%2fetc%2fpasswd", "/files/00001-done/samples/..%2f..%2f..%2fsecret.png",
    "/files/link-out.png", "/files/dir-out/secret.png", "/files/00001-done/checkpoints/../../secret.png",
    "/files/C:%5cWindows%5cwin.ini", "/files/00001-done%00.png", "/files/nope.png",
])
def test_files_outside_the_runs_folder_are_404(client, root, url):
    secret = root.parent / "secret.png"
    secret.write_bytes(png_bytes())
    for name, target in (("link-out.png", secret), ("dir-out", root.parent)):
        if not (root / name).is_symlink():
            (root / name).symlink_to(target)
    r = client.get(url)
    assert r.status_code == 404, url
    assert r.content != secret.read_bytes()


def test_files_inside_are_served_and_only_pictures_and_text(client, root):
    run = root / "00001-done"
    r = client.get("/files/00001-done/samples/step-0000010.png")
    assert r.status_code == 200 and r.content == (run / "samples" / "step-0000010.png").read_bytes()
    (run / "inside-link.png").unlink(missing_ok=True)
    (run / "inside-link.png").symlink_to(run / "samples" / "step-0000020.png")  # a symlink that stays inside
    assert client.get("/files/00001-done/inside-link.png").status_code == 200
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "checkpoints" / "state.pt").write_bytes(b"not served")
    assert client.get("/files/00001-done/checkpoints/state.pt").status_code == 404
    assert client.get("/api/run", params={"id": "../runs/00001-done"}).status_code == 404
    assert client.get("/api/run", params={"id": "/etc"}).status_code == 404
    assert client.get("/api/metrics", params={"id": "notes"}).status_code == 404
    assert client.get("/static/studio.js").status_code == 200
    for url in ("/static/..%2fapp.py", "/static/%2e%2e/app.py", "/static/vendor/..%2f..%2fapp.py"):
        assert client.get(url).status_code == 404, url


def test_safe_path_rules(root):
    assert safe_path(root, "00001-done/config.yaml") == (root / "00001-done" / "config.yaml").resolve()
    for bad in ("../x", "a/../../x", "/etc/passwd", "a\\..\\x", "x\x00", "", "link-out.png", "dir-out/secret.png"):
        with pytest.raises(NotFound):
            safe_path(root, bad)


def test_foreign_host_header_is_refused(root):
    app = create_app(root, token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.get("/api/runs").status_code == 200
        assert c.get("/api/runs", headers={"host": "localhost:8000"}).status_code == 200
        assert c.get("/api/runs", headers={"host": "evil.example"}).status_code == 400  # DNS rebinding
    with TestClient(create_app(root, token=TOKEN, host="0.0.0.0"), base_url="http://studio.lan") as c:
        assert c.get("/api/runs").status_code == 200


def test_startup_message_and_non_loopback_warning(root):
    msg, warn = startup_message(root, "127.0.0.1", 8123, "tok")
    assert "http://127.0.0.1:8123/#token=tok" in msg and warn is None
    msg, warn = startup_message(root, "0.0.0.0", 8123, "tok")
    assert warn is not None and "not a loopback address" in warn
    assert startup_message(root, "::1", 80, "t")[1] is None


def test_threaded_server_binds_loopback_on_a_free_port(root):
    import httpx
    st = serve_in_thread(root)
    try:
        assert st.url.startswith("http://127.0.0.1:") and not st.url.endswith(":0")
        assert httpx.get(st.url + "/api/runs", timeout=10).status_code == 200
        assert httpx.get(st.url + "/", timeout=10).text.startswith("<!doctype html>")
        assert httpx.get(st.url + "/static/vendor/uPlot.LICENSE", timeout=10).status_code == 200
    finally:
        st.stop()


def test_start_and_stop_need_the_token(client):
    for headers in ({}, {"x-studio-token": "wrong"}):
        for action in ("start", "stop", "resume"):
            r = client.post(f"/api/train/{action}", json={"preset": "vanilla", "id": "00004-live"}, headers=headers)
            assert r.status_code == 403 and "token" in r.json()["error"]
    ok = {"x-studio-token": TOKEN}
    r = client.post("/api/train/start", json={"preset": "nope"}, headers=ok)
    assert r.status_code == 400 and "unknown preset 'nope'" in r.json()["error"]
    r = client.post("/api/train/start", json={"preset": "vanilla", "overrides": ["optim.lr_dd=1"]}, headers=ok)
    assert r.status_code == 400 and "lr_dd" in r.json()["error"] and "\n" not in r.json()["error"]
    r = client.post("/api/train/start", json={"preset": "vanilla", "overrides": ["out=/tmp/elsewhere"]}, headers=ok)
    assert r.status_code == 400 and "set by the studio" in r.json()["error"]
    r = client.post("/api/train/stop", json={"id": "00004-live"}, headers=ok)  # not started by this studio
    assert r.status_code == 400 and "only runs started here" in r.json()["error"]
    assert client.post("/api/train/reboot", json={}, headers=ok).status_code == 404


# -- playground --------------------------------------------------------------------------------------

def test_playground_sample_is_the_models_output(client, root):
    from ganforge import load
    from ganforge.studio.playground import to_png
    run = next(p for p in root.iterdir() if p.name.endswith("projection-dcgan"))
    rid = run.name
    p = client.get("/api/playground", params={"id": rid}).json()
    assert p["kind"] == "sample" and p["controls"]["classes"] == 10 and p["controls"]["truncation"]
    assert p["step"] == 4
    a = client.post("/api/playground/sample", json={"id": rid, "seed": 5, "label": "3", "n": 4}).json()
    b = client.post("/api/playground/sample", json={"id": rid, "seed": 5, "label": "3", "n": 4}).json()
    c = client.post("/api/playground/sample", json={"id": rid, "seed": 6, "label": "3", "n": 4}).json()
    assert a["image"] == b["image"] and a["image"] != c["image"]
    g = load(run)
    want = np.asarray(Image.open(io.BytesIO(to_png(g.sample(4, seed=5, labels=3)))))
    assert np.array_equal(decode(a["image"]), want)
    assert client.app.state.models.get().loads == 1  # loaded once, then served from the cache
    t = client.post("/api/playground/sample", json={"id": rid, "seed": 5, "truncation": "0.5", "n": 4}).json()
    assert np.array_equal(decode(t["image"]), np.asarray(Image.open(io.BytesIO(to_png(g.sample(4, seed=5, truncation=0.5))))))
    r = client.post("/api/playground/sample", content=json.dumps({"id": rid, "seed": 5}),
                    headers={"content-type": "text/plain"})  # what a cross-site page can send without asking
    assert r.status_code == 415
    for bad, msg in (({"label": 10}, "label must be in 0..9"), ({"n": 0}, "n must be in"), ({"seed": "x"}, "seed must be"),
                     ({"truncation": -1}, "truncation must be in")):
        r = client.post("/api/playground/sample", json={"id": rid, **bad})
        assert r.status_code == 400 and msg in r.json()["error"], r.text


def test_playground_interpolation_starts_and_ends_at_the_seeds(client, root):
    from ganforge import load
    run = next(p for p in root.iterdir() if p.name.endswith("projection-dcgan"))
    j = client.post("/api/playground/interpolate", json={"id": run.name, "seed_a": 1, "seed_b": 2, "steps": 4,
                                                          "label": 7}).json()
    strip = decode(j["image"]).astype(float)  # 1 row of 4 frames, 28 px with 2 px padding
    g = load(run)
    for frame, seed in ((0, 1), (3, 2)):
        x = g.sample(1, seed=seed, labels=7)[0, 0]  # (28, 28) in [-1, 1]
        want = (x.clamp(-1, 1).add(1).div(2).mul(255)).round().numpy()
        got = strip[2:30, 2 + frame * 30: 30 + frame * 30]
        got = got[..., 0] if got.ndim == 3 else got
        assert np.abs(got - want).max() <= 1.0
    r = client.post("/api/playground/interpolate", json={"id": run.name, "steps": 40})
    assert r.status_code == 400 and "steps must be in 2..16" in r.json()["error"]


@pytest.mark.filterwarnings("ignore:.*has no readable manifest")
def test_playground_translate_upload(client, root):
    run = next(p for p in root.iterdir() if p.name.endswith("pix2pix"))
    p = client.get("/api/playground", params={"id": run.name}).json()
    assert p["kind"] == "translate" and p["controls"]["directions"] == ["ab"] and not p["controls"]["upscale"]
    url = f"/api/playground/translate?id={run.name}&direction=ab"
    raw = {"content-type": "application/octet-stream"}
    r = client.post(url, content=png_bytes(), headers={"content-type": "text/plain"})  # a cross-site form could send this
    assert r.status_code == 415
    r = client.post(url, content=png_bytes((40, 30), "RGB", (200, 10, 10)), headers=raw)
    assert r.status_code == 200, r.text
    assert decode(r.json()["image"]).shape[:2] == (32, 62)  # input | output, 28 px each with padding
    r = client.post(url, content=b"this is not an image at all", headers=raw)
    assert r.status_code == 400 and r.json()["error"].startswith("cannot read the upload")
    r = client.post(url, content=bomb_png(), headers=raw)  # 81 M pixels in a small file
    assert r.status_code == 400 and "too large" in r.json()["error"]
    r = client.post(url, content=b"\0" * (8 * 1024 * 1024 + 1), headers=raw)
    assert r.status_code == 413
    r = client.post(url.replace("=ab", "=ba"), content=png_bytes(), headers=raw)
    assert r.status_code == 400 and "direction" in r.json()["error"]
    r = client.post("/api/playground/sample", json={"id": run.name, "seed": 1})
    assert r.status_code == 400 and "does not sample from noise" in r.json()["error"]
    cond = next(p for p in root.iterdir() if p.name.endswith("projection-dcgan"))
    r = client.post(f"/api/playground/translate?id={cond.name}", content=png_bytes(), headers=raw)
    assert r.status_code == 400 and "use sample" in r.json()["error"]
    r = client.get("/api/playground", params={"id": "00001-done"})  # a fake run has no weights
    assert r.status_code == 400 and "checkpoint" in r.json()["error"]  # none yet, or none usable


def test_adapter_gives_each_model_kind_its_panel(tmp_path):
    """The one model-kind adapter, on a CycleGAN, a super-resolution model and a 2-D toy model."""
    from studio_helpers import train_tiny

    from ganforge import load
    from ganforge.studio.playground import model_adapter, run_interpolate, run_sample, run_translate
    quick = ["train.batch_size=4", "train.steps=1", "train.sample_every=0", "train.ckpt_every=0"]
    cyc = model_adapter(load(train_tiny(tmp_path, "cyclegan", ["model.g.width=4", "model.d.width=4", *quick])))
    assert (cyc.kind, cyc.controls["directions"], cyc.controls["upscale"]) == ("translate", ["ab", "ba"], False)
    a = decode("data:image/png;base64," + base64.b64encode(run_translate(cyc, png_bytes(), "ab", 10**6)).decode())
    b = decode("data:image/png;base64," + base64.b64encode(run_translate(cyc, png_bytes(), "ba", 10**6)).decode())
    assert a.shape == b.shape and not np.array_equal(a, b)  # two generators
    sr = model_adapter(load(train_tiny(tmp_path, "srgan", quick)))
    assert sr.kind == "translate" and sr.controls["upscale"] and sr.controls["input_shape"] == [1, 7, 7]
    out = decode("data:image/png;base64," + base64.b64encode(run_translate(sr, png_bytes((30, 30)), "ab", 10**6)).decode())
    assert out.shape[:2] == (32, 62)  # the 7 px input shown at the 28 px output's size, beside it
    toy = model_adapter(load(train_tiny(tmp_path, "vanilla", ["model.arch=mlp", "data.name=ring8", "model.z_dim=4",
                                                              "model.g.hidden=8", "model.d.hidden=8", *quick])))
    assert toy.kind == "sample" and toy.controls["picture"] == "plot" and toy.interpolate is None
    assert Image.open(io.BytesIO(run_sample(toy, {"seed": 1}))).size == (400, 400)  # a scatter plot
    with pytest.raises(ValueError, match="no latent interpolation"):
        run_interpolate(toy, {})


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_nothing_in_a_run_folder_is_unpickled_or_executed(tmp_path):
    root = tmp_path / "runs"
    run = real_runs(root)["cond"]
    marker = tmp_path / "pwned"
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    (ckpt / "state.pt").write_bytes(pickle.dumps(_Boom(str(marker))))  # a hostile payload with a valid checksum
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["files"]["state.pt"] = hashlib.sha256((ckpt / "state.pt").read_bytes()).hexdigest()
    write_json(ckpt / "manifest.json", manifest)
    evil = write_fake_run(root, "00009-evil", steps=4)
    (evil / "config.yaml").write_text(f"preset: !!python/object/apply:os.system ['touch {marker}']\n")
    app = create_app(root, token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        runs = runs_by_id(c)
        assert runs["00009-evil"]["preset"] == ""  # unreadable config: listed, not run
        for rid in runs:
            c.get("/api/run", params={"id": rid})
            c.get("/api/metrics", params={"id": rid})
        assert c.get("/api/playground", params={"id": run.name}).status_code == 200
        assert c.post("/api/playground/sample", json={"id": run.name, "seed": 1}).status_code == 200
    assert not marker.exists()


def test_cli_studio_errors_are_one_line(tmp_path, capsys):
    from ganforge.cli import main
    from ganforge.cli import build_parser
    args = build_parser().parse_args(["studio"])
    assert (args.runs_dir, args.host, args.port) == ("runs", "127.0.0.1", 0)  # this machine only, a free port
    assert main(["studio", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: runs folder not found") and err.count("\n") == 1
    import socket
    with socket.socket() as s:  # a port that is taken
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        assert main(["studio", str(tmp_path), "--port", str(s.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot listen on 127.0.0.1:") and err.count("\n") == 1


TOY = ["model.arch=mlp", "data.name=ring8", "model.z_dim=4", "model.g.hidden=8", "model.d.hidden=8",
       "train.batch_size=16", "train.steps=1000000", "train.log_every=20", "train.sample_every=0",
       "train.ckpt_every=0", "train.threads=1"]


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """A studio that started a (endless, tiny) training run through its API. The first test of
    this file asks for it, so the child's start-up (importing torch) overlaps the other tests."""
    root = tmp_path_factory.mktemp("launch") / "runs"
    root.mkdir()
    app = create_app(root, token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.post("/api/train/start", json={"preset": "vanilla", "overrides": TOY}, headers={"x-studio-token": TOKEN})
        assert r.status_code == 200, r.text
        yield app, c, root, r.json()["pid"]
        app.state.launcher.stop_all(timeout=30)


def test_start_then_stop_with_a_clean_interrupt(launched):
    app, c, root, pid = launched
    deadline = time.time() + 90
    run = None
    while time.time() < deadline:
        run = next(iter(runs_by_id(c).values()), None)
        if run and run["step"] >= 40:
            break
        time.sleep(0.2)
    assert run is not None and run["status"] == "running" and run["started_here"], run
    assert app.state.launcher.describe()[0]["run"] == run["id"]
    r = c.post("/api/train/stop", json={"id": run["id"]}, headers={"x-studio-token": TOKEN})
    assert r.status_code == 200 and r.json()["pid"] == pid
    assert app.state.launcher.launches[0].proc.wait(60) == 130  # interrupted (after its final checkpoint)
    s = runs_by_id(c)[run["id"]]
    assert s["status"] == "interrupted" and not s["started_here"]
    assert s["has_checkpoint"]  # the final checkpoint of a clean interrupt: it can be resumed
    result = json.loads((root / run["id"] / "result.json").read_text())
    assert result["reason"] == "interrupted" and result["step"] >= 40
