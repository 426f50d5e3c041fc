#!/usr/bin/env bash
# The README's StyleGAN2 pictures from a trained stylegan2 run on Fashion-MNIST:
#   bash scripts/stylegan2_pictures.sh RUN_DIR [OUT_DIR]      (OUT_DIR default docs/images)
# writes OUT_DIR/stylegan2_style_mix.png, stylegan2_truncation.png and stylegan2_projection.png.
# The pictures come from the ganforge commands below; Python only exports a few Fashion-MNIST test
# images to PNG files (the projection targets), stacks the per-image projection strips into one
# picture and enlarges every picture 3x with nearest-neighbour (28 px cells stay sharp).
# Set PYTHON to the interpreter that has ganforge (default: python). A few CPU-minutes on one thread.
set -euo pipefail
RUN=${1:?usage: bash scripts/stylegan2_pictures.sh RUN_DIR [OUT_DIR]}
OUT=${2:-docs/images}
PY=${PYTHON:-python}
SEED=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"

$PY -m ganforge style-mix "$RUN" --rows 4 --cols 6 --seed $SEED --out "$TMP/style_mix.png"
$PY -m ganforge truncation "$RUN" --psi 1,0.8,0.6,0.4,0.2,0 --rows 5 --seed $SEED --out "$TMP/truncation.png"

# projection targets: the first test image of five classes (T-shirt/top, trouser, sneaker, bag, ankle boot)
$PY - "$TMP/targets" <<'EOF'
import sys
from pathlib import Path
import torch
from ganforge.data.images import load_split
from ganforge.imagefiles import write_image
images, labels = load_split("fashion-mnist", "test")
for c in (0, 1, 7, 8, 9):
    i = int((labels == c).nonzero()[0])
    write_image(images[i].float().div(127.5).sub(1), Path(sys.argv[1]) / f"{c}-test{i:05d}.png")
EOF
$PY -m ganforge project "$RUN" "$TMP/targets" --space w+ --steps 300 --seed $SEED --quiet --out "$TMP/proj"

$PY - "$TMP" "$OUT" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
tmp, out = Path(sys.argv[1]), Path(sys.argv[2])
strips = [Image.open(p).convert("L") for p in sorted((tmp / "proj").glob("*-steps.png"))]
stacked = Image.new("L", (max(s.width for s in strips), sum(s.height for s in strips)), 255)
y = 0
for s in strips:
    stacked.paste(s, (0, y))
    y += s.height
pictures = {"style_mix": Image.open(tmp / "style_mix.png").convert("L"),
            "truncation": Image.open(tmp / "truncation.png").convert("L"), "projection": stacked}
for name, im in pictures.items():
    path = out / f"stylegan2_{name}.png"
    im.resize((im.width * 3, im.height * 3), Image.NEAREST).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
EOF
