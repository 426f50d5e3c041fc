"""The latent-space commands on trained runs: `ganforge project` (z for any image generator, w / w+
for style-based ones), `ganforge style-mix`, `ganforge truncation` (a psi sweep), and truncation as psi in
`sample` / `interpolate`."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import ganforge
from ganforge.cli import main
from ganforge.data import images as gi
from ganforge.imagefiles import read_image, write_image
from ganforge.interpolate import interpolation_frames
from ganforge.metrics.image import psnr
from ganforge.stylemix import style_mix_grid
from ganforge.truncation import parse_psi_list, truncation_grid

pytestmark = [pytest.mark.skipif(not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="Debian package dataset-fashion-mnist not installed"),
              pytest.mark.usefixtures("one_thread")]

COMMON = ["data.limit=32", "train.batch_size=4", "train.steps=2", "train.progress=false", "train.threads=1"]
STYLE = ["model.g.w_dim=8", "model.g.map_depth=1", "model.g.channel_base=128", "model.g.channel_max=8",
         "model.d.channel_base=128", "model.d.channel_max=8"]
QUANT = 2 / 255 + 1e-4  # PNG files hold 8-bit pixels


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    return {"style": ganforge.train("stylegan2", overrides=[f"out={out}", *COMMON, *STYLE], quiet=True),
            "dcgan": ganforge.train("dcgan", overrides=[f"out={out}", *COMMON, "model.z_dim=8", "model.g.width=8",
                                                         "model.d.width=8", "model.init=default", "train.steps=30"], quiet=True)}


def _targets(g, folder, n=2, seed=11):
    """Images the generator itself made, as PNG files (so an exact projection exists)."""
    x = g.sample(n, seed=seed)
    files = []
    for i, img in enumerate(x):
        files.append(folder / f"t{i}.png")
        write_image(img, files[-1])
    return files


def _load_latent(path):
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        return f.get_tensor("latent"), f.metadata()


def test_project_z_writes_a_latent_that_reproduces_the_reconstruction(runs, tmp_path, capsys):
    g = ganforge.load(runs["dcgan"])
    files = _targets(g, tmp_path / "in")
    out = tmp_path / "proj"
    assert main(["project", str(runs["dcgan"]), str(tmp_path / "in"), "--out", str(out), "--steps", "100",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "mean PSNR" in printed
    for f in files:
        z, meta = _load_latent(out / f"{f.stem}.safetensors")
        assert z.shape == (8,) and meta["space"] == "z" and meta["source"] == str(f)
        recon = read_image(out / f"{f.stem}-projected.png", g.data_shape)
        assert (g(z[None])[0] - recon).abs().max() <= QUANT  # the saved latent makes the saved picture
        target = read_image(f, g.data_shape)
        # the optimiser moved towards the target: far better than a random sample of the same model
        others = g.sample(16, seed=99)
        assert psnr(recon[None], target[None]).item() > psnr(others, target.expand_as(others)).max().item() + 10
        start, end = (float(v) for v in printed.split(f"{f}: PSNR ")[1].split(" dB")[0].split(" -> "))
        assert end > start + 10 and abs(end - float(meta["psnr"])) < 0.01
        strip = Image.open(out / f"{f.stem}-steps.png")
        assert strip.size[0] > 5 * strip.size[1]  # a one-row strip of several frames plus the target
        assert Image.open(out / f"{f.stem}-steps.gif").n_frames > 3


def test_project_w_plus_on_a_style_based_run(runs, tmp_path):
    g = ganforge.load(runs["style"])
    files = _targets(g, tmp_path / "in", n=1)
    out = tmp_path / "proj"
    assert main(["project", str(runs["style"]), str(files[0]), "--out", str(out), "--space", "w+",
                 "--steps", "20", "--quiet"]) == 0
    ws, meta = _load_latent(out / "t0.safetensors")
    assert ws.shape == (g.net.num_ws, 8) and meta["space"] == "w+"
    assert not torch.allclose(ws[0], ws[-1])  # w+: the layers got their own w
    with torch.no_grad():
        img = g.net.synthesize(ws[None], noise_mode="const")[0]
    assert (img - read_image(out / "t0-projected.png", g.data_shape)).abs().max() <= QUANT


@pytest.mark.parametrize("args, message", [
    (["--space", "w"], "needs a style-based generator"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--optimize-noise"], "--optimize-noise needs --space w or w+"),
])
def test_project_user_errors_are_one_line(runs, tmp_path, capsys, args, message):
    files = _targets(ganforge.load(runs["dcgan"]), tmp_path, n=1)
    code = main(["project", str(runs["dcgan"]), str(files[0]), "--out", str(tmp_path / "o"), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_project_refuses_missing_files_and_clashing_names(runs, tmp_path, capsys):
    assert main(["project", str(runs["dcgan"]), str(tmp_path / "nope.png"), "--out", str(tmp_path / "o")]) == 2
    assert "input not found" in capsys.readouterr().err
    g = ganforge.load(runs["dcgan"])
    a, b = _targets(g, tmp_path / "a", n=1)[0], _targets(g, tmp_path / "b", n=1)[0]
    assert main(["project", str(runs["dcgan"]), str(a), str(b), "--out", str(tmp_path / "o")]) == 2
    assert "overwrite each other" in capsys.readouterr().err


def test_style_mix_grid_takes_coarse_styles_from_rows_and_fine_from_columns(runs):
    g = ganforge.load(runs["style"])
    rows, cols, L = 2, 3, g.net.num_ws
    x, split = style_mix_grid(g, rows=rows, cols=cols, seed=5, split=2)
    assert split == 2 and x.shape == ((rows + 1) * (cols + 1), *g.data_shape)
    grid = x.view(rows + 1, cols + 1, *g.data_shape)
    # the sources, drawn independently: rows first, then columns, from one seeded generator
    z = g.latent(rows + cols, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ws = g.net.mapping(z, update_w_avg=False)
        src = g.net.synthesize(ws, noise_mode="const")
        cell = g.net.synthesize(torch.cat([ws[1:2, :2], ws[rows + 2:rows + 3, 2:]], 1), noise_mode="const")[0]
    torch.testing.assert_close(grid[0, 1:], src[rows:])  # top row: column sources
    torch.testing.assert_close(grid[1:, 0], src[:rows])  # left column: row sources
    torch.testing.assert_close(grid[2, 3], cell)  # row source 1's coarse + column source 2's fine styles
    assert (grid[0, 0] == 1).all()  # the blank corner
    assert not torch.allclose(grid[1, 1], grid[1, 2]) and not torch.allclose(grid[1, 1], grid[2, 1])
    assert L > 2


def test_style_mix_cli_and_its_errors(runs, tmp_path, capsys):
    out = tmp_path / "mix.png"
    assert main(["style-mix", str(runs["style"]), "--rows", "2", "--cols", "3", "--out", str(out)]) == 0
    assert Image.open(out).size == (4 * 30 + 2, 3 * 30 + 2)  # 28 px cells with 2 px padding
    assert "step 2, EMA, seed 0)" in capsys.readouterr().out  # which weights drew it, as sample says
    assert main(["style-mix", str(runs["dcgan"]), "--out", str(out)]) == 2
    assert "needs a style-based generator" in capsys.readouterr().err
    assert main(["style-mix", str(runs["style"]), "--split", "99", "--out", str(out)]) == 2
    assert "--split must be in 1.." in capsys.readouterr().err


def test_truncation_grid_rows_are_latents_and_columns_are_psi(runs):
    g = ganforge.load(runs["style"])
    psi = (1.0, 0.5, 0.0, -0.5)
    x = truncation_grid(g, psi=psi, rows=3, seed=7)
    assert x.shape == (3 * len(psi), *g.data_shape)
    grid = x.view(3, len(psi), *g.data_shape)
    # the latents are sample()'s for the same seed; w is moved by hand: w_avg + psi (w - w_avg)
    z = g.latent(3, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        w = g.net.mapping(z, update_w_avg=False)  # (3, L, w_dim), psi 1
        avg = g.net.w_avg.expand_as(w)
        for c, p in enumerate(psi):
            want = g.net.synthesize(avg + p * (w - avg), noise_mode="const")
            torch.testing.assert_close(grid[:, c], want)
    assert g.net.w_avg.abs().sum() > 0  # training moved the average: psi 0 is not simply w = 0
    torch.testing.assert_close(grid[0, 2], grid[2, 2])  # psi 0: every row shows the average w's image
    assert not torch.allclose(grid[0, 0], grid[2, 0])  # psi 1: the rows differ
    assert not torch.allclose(grid[0, 0], grid[0, 1])  # psi is applied column by column
    torch.testing.assert_close(truncation_grid(g, psi=psi, rows=3, seed=7), x)  # seeded: the same picture


def test_truncation_cli_writes_a_latent_by_psi_picture(runs, tmp_path, capsys):
    out = tmp_path / "t.png"
    assert main(["truncation", str(runs["style"]), "--rows", "2", "--out", str(out)]) == 0
    assert Image.open(out).size == (6 * 30 + 2, 2 * 30 + 2)  # default psi 1, 0.8, ..., 0: six columns
    assert "2 latents x psi 1, 0.8, 0.6, 0.4, 0.2, 0;" in capsys.readouterr().out
    assert main(["truncation", str(runs["style"]), "--psi", "1,0", "--rows", "3", "--out", str(out)]) == 0
    assert Image.open(out).size == (2 * 30 + 2, 3 * 30 + 2)


@pytest.mark.parametrize("args, message", [
    (["--psi", "1,x"], "--psi takes comma-separated numbers"),
    (["--psi", ""], "--psi takes comma-separated numbers"),
    (["--psi", "1,nan"], "--psi takes comma-separated numbers"),
    (["--rows", "0"], "--rows must be >= 1"),
])
def test_truncation_cli_user_errors_are_one_line(runs, tmp_path, capsys, args, message):
    assert main(["truncation", str(runs["style"]), "--out", str(tmp_path / "t.png"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_truncation_refuses_models_without_a_mapping_net(runs, tmp_path, capsys):
    assert main(["truncation", str(runs["dcgan"]), "--out", str(tmp_path / "t.png")]) == 2
    assert "needs a style-based generator" in capsys.readouterr().err
    assert parse_psi_list("1, 0.7,0") == (1.0, 0.7, 0.0)


def test_interpolate_truncation_is_psi_for_style_based_models(runs):
    g = ganforge.load(runs["style"])
    g.net.noise_mode = "const"
    centre = interpolation_frames(g, steps=3, rows=2, truncation=0.0)  # psi = 0: every frame is w_avg's image
    torch.testing.assert_close(centre, centre[:1, :1].expand_as(centre))
    free = interpolation_frames(g, steps=3, rows=2)
    torch.testing.assert_close(interpolation_frames(g, steps=3, rows=2, truncation=1.0), free)
    assert not torch.allclose(free[0, 0], free[1, 2])
    # other models keep BigGAN's truncated z: psi is never passed to them
    d = ganforge.load(runs["dcgan"])
    assert interpolation_frames(d, steps=3, rows=2, truncation=0.5).shape == (2, 3, *d.data_shape)


def test_sample_truncation_zero_is_named_in_the_file(runs, tmp_path, capsys):
    assert main(["sample", str(runs["style"]), "--n", "4", "--truncation", "0"]) == 0
    assert "-trunc0.png" in capsys.readouterr().out


def test_project_and_style_mix_refuse_vector_models(train_tiny, tmp_path, capsys):
    run = train_tiny()  # a toy 2-D mixture model
    img = tmp_path / "x.png"
    Image.new("L", (28, 28)).save(img)
    assert main(["project", str(run), str(img), "--out", str(tmp_path / "o")]) == 2
    assert "this model makes vectors" in capsys.readouterr().err
    assert main(["style-mix", str(run), "--out", str(tmp_path / "m.png")]) == 2
    assert "needs a style-based generator" in capsys.readouterr().err
