"""Training a per-style network: :class:`Trainer` runs Adam over random crops of a folder of photos, with
impasto's VGG-19 as the loss network, and writes a model file (:mod:`impasto.io.models`).

By default (``start="builtin"``) it starts from the built-in styles' network (Dumoulin et al. 2017,
:mod:`impasto.io.builtin`): the new style is one more row of every conditional instance norm's scales and shifts,
initialized to the built-in row whose pictures of the first photos score the lowest training loss
(``style_row="nearest"``; ``"mean"``: the mean of the 26 rows); that row learns at ``lr`` 3e-2 and the
convolutions at ``conv_lr`` 3e-3 (``fine_tune_convs=False`` keeps them frozen, as the paper adds styles). The
loss there is the default preset's objective: content at ``relu4_2``, style Gram matrices at ``relu1_1 ...
relu5_1``, style weight 5. With ``start="scratch"`` it trains Johnson, Alahi & Fei-Fei's network (2016) from
random weights (``lr`` 1e-3) on their layers: content at ``relu2_2``, style at ``relu1_1 ... relu4_1``, style
weight 3. The model file records where it started (``start`` in its metadata).

Each loss (and total variation) is divided by its target's mean square as the default preset does
(``normalize_losses``), so the weights do not depend on the network's feature scale
(docs/guides/trained-networks.md). The style Gram losses run as taps inside the forward pass
(:func:`impasto.core.losses.gram_mse_tap`), the content image's features are computed only up to the content
layer and without autograd, the loss network runs channels-last, and the network's upsampling and last conv run in
their equivalent faster forms (:meth:`impasto.methods.transformer.TransformerNet.forward`).

Data order and augmentation are functions of (seed, image index) alone: the photos of epoch e are a permutation
drawn from (seed, e), and each crop and flip from (seed, index). So a checkpoint needs no data-loader state to
resume exactly: weights, Adam's state and the step count are enough (the torch generator's state is saved as
well). Ctrl-C and SIGTERM are deferred to the end of the running step, a checkpoint is written, and
:class:`TrainingInterrupted` says where; a second signal stops at once (the last periodic checkpoint stays).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from .core.checks import check_fields, option
from .core.device import cpu_supports_bf16, pick_device
from .core.losses import gram_matrix, gram_mse_tap
from .core.sizes import fit_size
from .core.vgg import VGG19, build_vgg, resolve_layers
from .errors import InputError
from .io import builtin
from .io.atomic import check_writable, sibling
from .io.history import write_history
from .io.images import load_image, open_image, save_image, tensor_to_pil, to_rgb
from .io.models import ARCHITECTURE, MULTISTYLE, LoadedModel, check_state_dict, load_model, save_model
from .methods.multistyle import CINConv, MultiStyleNet
from .methods.transformer import DEFAULT_WIDTH, TransformerNet
from .options import NO_LAYERS
from .version import __version__

#: File extensions taken from a data folder.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")
#: The folder of bundled example photos (used when no --data is given).
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Share of a photo's area a random crop covers (uniform in this range), and its aspect ratio range.
CROP_AREA = (0.25, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
#: Bytes of decoded photos kept in memory between epochs.
CACHE_BYTES = 512 << 20
#: Steps averaged for the losses recorded in a model file.
LOSS_WINDOW = 50
#: Where training starts: the built-in styles' network (a new style row) or random weights (Johnson et al.).
STARTS = ("builtin", "scratch")
#: Where a new style row starts: the built-in row with the lowest training loss on the first batch, or their mean.
STYLE_ROWS = ("nearest", "mean")
#: How the learning rates change over a run: a straight line down to zero at the end of its budget (the step count
#: or ``--minutes``, whichever ends first), or constant.
LR_SCHEDULES = ("constant", "linear")
#: Defaults that depend on the start: Adam's learning rate (of the style row / of the whole network), style weight.
#: From the built-in start the network learns the default preset's own objective (content relu4_2, style
#: relu1_1..relu5_1, weight 5: what the outputs are scored by), with the convolutions fine-tuned; from scratch,
#: Johnson et al.'s layers (docs/guides/trained-networks.md says how each was chosen).
START_DEFAULTS: dict[str, dict[str, Any]] = {
    "builtin": {"lr": 3e-2, "style_weight": 5.0, "fine_tune_convs": True, "content_layers": ("relu4_2",),
                "style_layers": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")},
    "scratch": {"lr": 1e-3, "style_weight": 3.0},
}  # fmt: skip


@dataclass
class TrainOptions:
    """Every setting of a training run; all of them are recorded in the model file. Each field's type and
    :func:`~impasto.core.checks.option` spec are what :func:`make_train_options` checks first."""

    start: str = "builtin"  # one of STARTS
    style_row: str = option("nearest", choices=STYLE_ROWS)  # builtin start: where the new style row starts
    fine_tune_convs: bool = False  # builtin start (where it defaults to True): train the convolutions too
    conv_lr: float = option(3e-3, lo=0.0, hi=1.0, lo_open=True)  # their learning rate
    style_weight: float = option(3.0, lo=0.0)  # docs/guides/trained-networks.md; 5 from the builtin start
    content_weight: float = option(1.0, lo=0.0)
    tv_weight: float = option(0.0, lo=0.0)
    content_layers: tuple[str, ...] = ("relu2_2",)  # empty: no content loss; relu4_2 from the builtin start
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # empty: none; + relu5_1 builtin
    style_size: int = option(512, lo=16, hi=4096)  # longest side of the style image
    train_size: int = option(256, lo=32, hi=2048)  # side of the square training crops (a multiple of 4)
    batch_size: int = option(4, lo=1, hi=256)
    lr: float = option(1e-3, lo=0.0, hi=1.0, lo_open=True)  # 3e-2 from the builtin start (the style row)
    lr_schedule: str = option("constant", choices=LR_SCHEDULES)  # constant scored better in 45 steps
    steps: int | None = option(None, lo=1, hi=10_000_000)  # None: from epochs, else DEFAULT_STEPS
    epochs: float | None = option(None, lo=0.0, lo_open=True)
    width: int = option(DEFAULT_WIDTH, lo=4, hi=128)
    seed: int = option(0, lo=0, hi=2**62)
    checkpoint_every: int = option(200, lo=0, hi=10_000_000)  # steps; a killed training loses at most this many
    sample_every: int = option(100, lo=0, hi=10_000_000)  # steps; 0: no samples
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


#: Steps when neither --steps, --epochs nor --minutes is given (from scratch; from the built-in start, 150 steps
#: of 4 x 256 px, about 15 minutes of a 2-core AVX2 CPU, score 10-30% lower than AdaIN on held-out photos).
DEFAULT_STEPS = 2000
#: Steps of a run that only a time budget (``--minutes``) or a signal ends.
UNTIL_STOPPED = 10_000_000
DEFAULT_STEPS_BUILTIN = 150


def make_train_options(**overrides: Any) -> TrainOptions:
    """Training options with ``overrides`` (None values ignored), validated: each against its field's type and
    spec, then how they combine."""
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    o = TrainOptions(**check_fields(TrainOptions, {k: v for k, v in overrides.items() if v is not None}))
    if o.start not in STARTS:
        raise InputError(f"training starts from one of {', '.join(STARTS)}, got {o.start!r}")
    for name, value in START_DEFAULTS[o.start].items():
        if overrides.get(name) is None:
            setattr(o, name, value)
    if o.start == "builtin" and o.width != DEFAULT_WIDTH:
        raise InputError(f"--width sets the network trained --from-scratch; the built-in start has {DEFAULT_WIDTH} "
                         "channels")  # fmt: skip
    if o.fine_tune_convs and o.start != "builtin":
        raise InputError("--fine-tune-convs applies to the built-in start, not --from-scratch (which trains all)")
    resolve_layers(o.content_layers + o.style_layers)
    if not o.content_layers and not o.style_layers:
        raise InputError(NO_LAYERS)
    if o.train_size % 4:
        raise InputError(f"--train-size must be a multiple of 4, got {o.train_size}")
    if o.steps is not None and o.epochs is not None:
        raise InputError("give --steps or --epochs, not both")
    return o


# -- data --------------------------------------------------------------------------------------------------
def find_photos(folder: str | os.PathLike) -> list[Path]:
    """Image files (by extension) under ``folder``, recursively, hidden files and folders left out, sorted."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise InputError(f"data folder not found: {root}")
    if not root.is_dir():
        raise InputError(f"--data must be a folder of photos, got a file: {root}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    if not found:
        raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {root} or below")
    return sorted(found)


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (stable across runs and platforms)."""
    digest = hashlib.blake2b(",".join(map(str, values)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class PhotoFolder:
    """Random square crops of a list of photos, a pure function of (seed, index).

    Files are checked when the folder is read (their headers) and when first decoded; an unreadable one is
    skipped with a warning (the next photo of the epoch takes its place, which a resumed run repeats alike).
    """

    def __init__(self, files: Sequence[Path], size: int, seed: int, warn: Callable[[str], None] | None = None) -> None:
        self.warn = warn or (lambda msg: print(msg, file=sys.stderr))
        self.size, self.seed = size, seed
        self.files: list[Path] = []
        for f in files:
            try:
                with Image.open(f) as im:
                    im.size  # noqa: B018 - the header parses
            except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped
                self.warn(f"impasto: warning: skipped unreadable image {f} ({str(exc).splitlines()[0][:80]})")
                continue
            self.files.append(Path(f))
        if not self.files:
            raise InputError("no readable photos to train on")
        self.bad: set[int] = set()
        self._cache: OrderedDict[int, Image.Image] = OrderedDict()
        self._cache_bytes = 0
        self._perm: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        """A hash of the photo list (names and sizes): a resumed run's data order is the same when this is."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f.name}:{f.stat().st_size};".encode())
        return h.hexdigest()[:16]

    def _order(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(_mix(self.seed, "epoch", epoch))
            self._perm = (epoch, torch.randperm(len(self.files), generator=g))
        return self._perm[1]

    def _decoded(self, i: int) -> Image.Image | None:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        if i in self.bad:
            return None
        try:
            with Image.open(self.files[i]) as im:
                im.draft("RGB", (self.size, self.size))  # JPEG: decode at a reduced scale when it is large
                im.load()
                rgb = to_rgb(im)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped
            self.bad.add(i)
            self.warn(f"impasto: warning: skipped unreadable image {self.files[i]} ({str(exc).splitlines()[0][:80]})")
            return None
        # Keep at most twice the crop size on the short side: enough for any crop, and cheap to hold.
        short = min(rgb.size)
        if short > 2 * self.size:
            rgb = rgb.resize(fit_size(*rgb.size, round(max(rgb.size) * 2 * self.size / short)), Image.BILINEAR)
        self._cache[i] = rgb
        self._cache_bytes += rgb.width * rgb.height * 3
        while self._cache_bytes > CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.width * old.height * 3
        return rgb

    def sample(self, index: int) -> torch.Tensor:
        """The ``index``-th training crop (3, size, size) in [0, 1]."""
        n = len(self.files)
        epoch, pos = divmod(index, n)
        order = self._order(epoch)
        for k in range(n):
            im = self._decoded(int(order[(pos + k) % n]))
            if im is not None:
                break
        else:
            raise InputError("none of the photos could be decoded")
        g = torch.Generator().manual_seed(_mix(self.seed, "crop", index))
        r = torch.rand(5, generator=g, dtype=torch.float64).tolist()
        w, h = im.size
        area = w * h * (CROP_AREA[0] + (CROP_AREA[1] - CROP_AREA[0]) * r[0])
        ratio = math.exp(math.log(CROP_RATIO[0]) + (math.log(CROP_RATIO[1]) - math.log(CROP_RATIO[0])) * r[1])
        cw = min(w, max(1, round(math.sqrt(area * ratio))))
        ch = min(h, max(1, round(math.sqrt(area / ratio))))
        left, top = round((w - cw) * r[2]), round((h - ch) * r[3])
        crop = im.resize((self.size, self.size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
        if r[4] < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        t = torch.frombuffer(bytearray(crop.tobytes()), dtype=torch.uint8).view(self.size, self.size, 3)
        return t.permute(2, 0, 1).float().div_(255)

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        """The batch of step ``step`` (0-based): images step * batch_size ... in order."""
        return torch.stack([self.sample(step * batch_size + i) for i in range(batch_size)])


def default_data() -> list[Path]:
    """The photos bundled with the project (``examples/``), for a first try without --data."""
    if not EXAMPLES.is_dir():
        raise InputError("no --data folder given, and the bundled example photos are not installed: give --data")
    return find_photos(EXAMPLES)


# -- the loss ----------------------------------------------------------------------------------------------
class PerceptualLoss:
    """Content, style and TV losses of a batch of outputs (Johnson et al.), normalized as the default preset:
    each content/style loss divided by its target's mean square.

    On a CPU with native bf16 (oneDNN avx512_bf16 / AMX: :func:`impasto.core.device.cpu_supports_bf16`) the
    loss network runs under bf16 autocast (``bf16``); Gram matrices, targets and losses stay fp32. Elsewhere (an
    AVX2 CPU, which would emulate bf16 slowly) it runs in fp32."""

    def __init__(self, options: TrainOptions, style: torch.Tensor, device: torch.device,
                 bf16: bool | None = None) -> None:  # fmt: skip
        self.options = options
        self.bf16 = (device.type == "cpu" and cpu_supports_bf16()) if bf16 is None else bf16
        self.content_layers = resolve_layers(options.content_layers)
        self.style_layers = resolve_layers(options.style_layers)
        net = build_vgg(self.content_layers + self.style_layers, device=device)
        self.net: VGG19 = net.channels_last() if device.type == "cpu" else net
        self.device = device
        with torch.no_grad():
            feats = self.net(style.to(device), self.style_layers)
        self.grams = {n: gram_matrix(feats[n]).float() for n in self.style_layers}
        self.style_scale = {n: 1.0 / float(g.pow(2).mean().clamp_min(1e-12)) for n, g in self.grams.items()}

    def content_targets(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The content layers' features of the input batch (no autograd; only up to the content layers)."""
        if not self.content_layers:
            return {}
        with torch.no_grad(), self._autocast():
            return {n: f.float() for n, f in self.net(x, self.content_layers).items()}

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def __call__(self, y: torch.Tensor, targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Unweighted ``content``, ``style`` and ``tv`` losses of outputs ``y`` (differentiable)."""
        taps = {n: (lambda f, n=n: gram_mse_tap(f, self.grams[n])) for n in self.style_layers}
        with self._autocast():
            feats, tapped = self.net.forward_with_taps(y, self.content_layers, taps)
        zero = torch.zeros((), device=y.device)
        content = sum((F.mse_loss(feats[n].float(), t) / t.pow(2).mean().clamp_min(1e-12)
                       for n, t in targets.items()), zero)  # fmt: skip
        style = sum((tapped[n] * self.style_scale[n] for n in self.style_layers), zero)
        yf = y.float()
        tv = (yf[..., 1:, :] - yf[..., :-1, :]).pow(2).mean() + (yf[..., :, 1:] - yf[..., :, :-1]).pow(2).mean()
        return {"content": content, "style": style, "tv": tv}


def builtin_networks() -> MultiStyleNet:
    """The built-in styles' network with its 26 style rows; a one-line :class:`InputError` when the built-in
    styles are not installed."""
    try:
        base = load_model(f"{builtin.PREFIX}0")
    except InputError as err:
        raise InputError(f"{err} (or train Johnson et al.'s network: --from-scratch)") from None
    full = MultiStyleNet.for_state_dict(base.state_dict)
    full.load_state_dict(base.state_dict)
    return full


def one_row(full: MultiStyleNet, row: int | None) -> MultiStyleNet:
    """A one-style network with ``full``'s convolutions and its style row ``row`` (None: the mean of the rows)."""
    net = MultiStyleNet(1, int(full.contract[0].w.shape[0]), (int(full.expand[0].w.shape[0]),
                        int(full.expand[1].w.shape[0])), len(full.res))  # fmt: skip
    state = {k: ((v.mean(0, keepdim=True) if row is None else v[row : row + 1]) if k.endswith((".gamma", ".beta"))
                 else v) for k, v in full.state_dict().items()}  # fmt: skip
    net.load_state_dict(state)
    net.set_style([1.0])
    return net


def nearest_row(full: MultiStyleNet, loss: Callable[[torch.Tensor], float], x: torch.Tensor) -> int:
    """The built-in style row whose pictures ``full(x)`` score the lowest ``loss`` (where a new style starts: a row
    near the painting needs fewer steps than the mean of the rows)."""
    scores = []
    with torch.no_grad():
        for row in range(full.styles):
            full.set_style(torch.nn.functional.one_hot(torch.tensor(row), full.styles).float())
            scores.append(loss(full(x)))
    return min(range(len(scores)), key=scores.__getitem__)


# -- the loop ----------------------------------------------------------------------------------------------
class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (``signum`` 2) or SIGTERM (15) stopped training; ``checkpoint`` is where it was saved (None when a
    second signal stopped it before that)."""

    def __init__(self, signum: int, checkpoint: Path | None, step: int) -> None:
        super().__init__("interrupted")
        self.signum, self.checkpoint, self.step = signum, checkpoint, step


@dataclass
class TrainInfo:
    """What the progress callback gets after each step."""

    step: int
    total: int
    loss: float
    parts: dict[str, float]  # weighted content, style, tv
    elapsed: float  # seconds of this run (a resumed run counts from its start)
    images_per_second: float
    sample: Path | None = None  # a sample written at this step


@dataclass
class TrainResult:
    """A finished training: the model file, its step count and the loss history."""

    model: Path
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    sample: Path | None = None  # the last sample written
    sample_photo: Path | None = None  # the photo samples are made from


@contextmanager
def _deferred_signals() -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM recorded instead of raised (in the main thread); a second one raises at once."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return

    def handler(signum: int, frame: Any) -> None:
        pending.append(signum)
        if len(pending) > 1:
            raise TrainingInterrupted(signum, None, -1)

    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield pending
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


class Trainer:
    """One training run: ``Trainer(style, output, options, data).run(callback)``; or resumed from a checkpoint
    with :meth:`resume`."""

    def __init__(
        self,
        style: str | os.PathLike,
        output: str | os.PathLike,
        options: TrainOptions,
        data: str | os.PathLike | None = None,
        checkpoint: str | os.PathLike | None = None,
        samples: str | os.PathLike | None = None,
        history: str | os.PathLike | None = None,
        warn: Callable[[str], None] | None = None,
        state: LoadedModel | None = None,
    ) -> None:
        o = self.options = options
        self.output = Path(output)
        self.checkpoint_path = Path(checkpoint) if checkpoint else sibling(self.output, "ckpt")
        self.samples_dir = Path(samples) if samples else self.output.with_name(f"{self.output.stem}-samples")
        self.history_path = Path(history) if history else None
        self.warn = warn or (lambda msg: print(msg, file=sys.stderr))
        self.style_path = Path(style)
        open_image(self.style_path)  # one-line error for a bad style image, before anything else
        self.style_sha256 = builtin.file_sha256(self.style_path)
        if state is not None and state.metadata.get("style", {}).get("sha256") != self.style_sha256:
            raise InputError(f"{self.style_path} is not the style image this checkpoint was trained on "
                             f"({state.metadata.get('style', {}).get('name')}, sha256 differs)")  # fmt: skip
        for path in (self.output, self.checkpoint_path, *([self.history_path] if self.history_path else [])):
            if not path.parent.is_dir():
                raise InputError(f"output folder does not exist: {path.parent}")
            if path.resolve() == self.style_path.resolve():
                raise InputError(f"output {path} is the style image; refusing to overwrite an input")
        check_writable(self.output.parent)
        if self.history_path and self.history_path.suffix.lower() not in (".json", ".csv"):
            raise InputError(f"--history file must end in .json or .csv: {self.history_path}")
        # the built-in start's network before the photos: a missing package fails first, in one line
        start = builtin_networks() if o.start == "builtin" and state is None else None
        self.data_folder = str(Path(data).expanduser()) if data else None
        bundled = [] if data else [f for f in default_data() if builtin.file_sha256(f) != self.style_sha256]
        files = find_photos(data) if data else bundled
        self.data = PhotoFolder(files, o.train_size, o.seed, self.warn)
        self.total = o.steps if o.steps is not None else (
            math.ceil(o.epochs * len(self.data) / o.batch_size) if o.epochs is not None
            else DEFAULT_STEPS_BUILTIN if o.start == "builtin" else DEFAULT_STEPS)  # fmt: skip
        self.device = pick_device(o.device)
        torch.manual_seed(o.seed)
        style_t = load_image(self.style_path, o.style_size, "style image")
        self.loss = PerceptualLoss(o, style_t, self.device)
        self.start_row: int | None = None  # the built-in row a new style started from (None: their mean)
        self.net = self._network(start, state)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.seconds_before = 0.0
        if state is not None:
            check_state_dict(state, self.net.state_dict())
            self.net.load_state_dict(state.state_dict)
            self.step = state.step
            self.history = list(state.history)
            self.seconds_before = float(state.metadata.get("seconds", 0.0))
            if "torch" in state.rng:
                torch.set_rng_state(state.rng["torch"])
            if state.metadata.get("data", {}).get("fingerprint") != self.data.fingerprint():
                self.warn("impasto: warning: the photos differ from the checkpoint's; the data order will differ")
        # The transformer trains in NCHW: its instance norms' forward and backward convert channels-last tensors
        # (measured slower overall); the loss network runs channels-last and converts its input itself.
        self.memory_format = torch.contiguous_format
        self.net = self.net.to(self.device, memory_format=self.memory_format).train()
        self.optimizer = torch.optim.Adam(self._param_groups(), lr=o.lr)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]  # before a checkpoint's (scaled) rates
        if state is not None and state.optimizer:
            try:
                self.optimizer.load_state_dict(state.optimizer)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise InputError(f"corrupt checkpoint (optimizer state: {str(exc).splitlines()[0]}): "
                                 f"{state.path}") from None  # fmt: skip
        self.sample_input = self._sample_input()
        self.samples_on = True

    @classmethod
    def resume(cls, source: str | os.PathLike, style: str | os.PathLike, output: str | os.PathLike | None = None,
               data: str | os.PathLike | None = None, steps: int | None = None, epochs: float | None = None,
               **kwargs: Any) -> Trainer:  # fmt: skip
        """Continue the training a checkpoint recorded, with its options (``steps``/``epochs`` may extend it)."""
        state = load_model(source, kind="checkpoint")
        recorded = dict(state.metadata.get("training", {}))
        # a checkpoint that predates the choice of start trained Johnson et al.'s network from scratch
        recorded.setdefault("start", "builtin" if state.metadata.get("architecture") == MULTISTYLE else "scratch")
        if steps is not None or epochs is not None:
            recorded.update(steps=steps, epochs=epochs)
        try:
            options = make_train_options(**recorded)
        except TypeError as exc:
            raise InputError(f"checkpoint {source} records options this version does not know ({exc})") from None
        meta = state.metadata
        output = output if output is not None else meta.get("output")
        if not output:
            raise InputError("give -o for the model file of the resumed training")
        data = data if data is not None else meta.get("data", {}).get("folder")
        kwargs["checkpoint"] = kwargs.get("checkpoint") or source
        return cls(style, output, options, data, state=state, **kwargs)

    def _network(self, builtins: MultiStyleNet | None, state: LoadedModel | None) -> TransformerNet | MultiStyleNet:
        """The network to train: a checkpoint's shape, a new row of the built-in network ``builtins``, or Johnson
        et al.'s from random weights."""
        o = self.options
        if o.start != "builtin":
            return TransformerNet(o.width)
        if builtins is None:  # resumed: the checkpoint's weights are loaded next
            self.start_row = state.metadata.get("start", {}).get("row") if state is not None else None
            return MultiStyleNet.for_state_dict(state.state_dict)  # type: ignore[union-attr]
        if o.style_row == "nearest":
            x = self.data.batch(0, min(o.batch_size, 2)).to(self.device)
            self.start_row = nearest_row(builtins.to(self.device), self._scorer(x), x)
        return one_row(builtins, self.start_row)

    def _scorer(self, x: torch.Tensor) -> Callable[[torch.Tensor], float]:
        """The weighted training loss of outputs for the inputs ``x`` (no autograd)."""
        o = self.options
        targets = self.loss.content_targets(x)

        def score(y: torch.Tensor) -> float:
            with torch.no_grad():
                parts = self.loss(y, targets)
            return float(o.content_weight * parts["content"] + o.style_weight * parts["style"]
                         + o.tv_weight * parts["tv"])  # fmt: skip

        return score

    def _param_groups(self) -> list[dict[str, Any]]:
        """What Adam trains: the whole network from scratch; from the built-in start the style row of every norm
        (``lr``), and with ``fine_tune_convs`` the convolutions too (``conv_lr``); the rest is frozen."""
        o = self.options
        if not isinstance(self.net, MultiStyleNet):
            return [{"params": list(self.net.parameters())}]
        norms = [p for n in self.net.norms() for p in n.parameters()]
        convs = [m.w for m in self.net.modules() if isinstance(m, CINConv)]
        for p in convs:
            p.requires_grad_(o.fine_tune_convs)
        groups = [{"params": norms}]
        if o.fine_tune_convs:
            groups.append({"params": convs, "lr": o.conv_lr})
        return groups

    def _sample_input(self) -> torch.Tensor:
        """The picture samples are made from: the first photo, its longest side twice the crop size."""
        return load_image(self.data.files[0], 2 * self.options.train_size, "sample photo")

    def metadata(self, seconds: float) -> dict[str, Any]:
        """What a model file or checkpoint records."""
        recent = self.history[-LOSS_WINDOW:]
        losses = (
            {k: sum(r[k] for r in recent) / len(recent) for k in ("loss", "content", "style", "tv")} if recent else {}
        )
        with Image.open(self.style_path) as im:
            style_size = list(im.size)
        multi = isinstance(self.net, MultiStyleNet)
        start: dict[str, Any] = {"from": "scratch"}
        if multi:
            trained = "style row and convolutions" if self.options.fine_tune_convs else "style row"
            row = ("mean of the 26 built-in rows" if self.start_row is None
                   else f"built-in row {self.start_row} (the lowest training loss of the 26)")  # fmt: skip
            start = {"from": "builtin", **builtin.SOURCE, "style_row": row, "row": self.start_row,
                     "trained": trained}
        return {
            "impasto": __version__,
            "torch": torch.__version__,
            "architecture": MULTISTYLE if multi else ARCHITECTURE,
            "width": int(self.net.contract[0].w.shape[0]) if multi else self.options.width,  # type: ignore[union-attr]
            "start": start,
            "loss_precision": "bf16" if self.loss.bf16 else "fp32",
            "step": self.step,
            "images_seen": self.step * self.options.batch_size,
            "epochs": round(self.step * self.options.batch_size / len(self.data), 4),
            "seconds": round(seconds, 2),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "style": {"name": self.style_path.name, "sha256": self.style_sha256, "size": style_size},
            "training": self.options.to_dict(),
            "data": {"folder": self.data_folder, "images": len(self.data), "fingerprint": self.data.fingerprint()},
            "output": str(self.output),
            "losses": losses,
        }

    def save_checkpoint(self, seconds: float) -> Path:
        return save_model(self.checkpoint_path, self.net.state_dict(), self.metadata(seconds), "checkpoint",
                          optimizer=self.optimizer.state_dict(), rng={"torch": torch.get_rng_state()},
                          history=self.history)  # fmt: skip

    def save_model(self, seconds: float) -> Path:
        return save_model(self.output, self.net.state_dict(), self.metadata(seconds))

    def write_sample(self) -> Path:
        """The sample picture stylized by the network as it is now."""
        self.net.eval()
        with torch.no_grad():
            x = self.sample_input.to(self.device).contiguous(memory_format=self.memory_format)
            out = self.net(x).clamp(0, 1).float().cpu()
        self.net.train()
        self.samples_dir.mkdir(exist_ok=True)
        return save_image(tensor_to_pil(out), self.samples_dir / f"step{self.step:06d}.png",
                          {"impasto": __version__, "step": self.step})  # fmt: skip

    def lr_scale(self, elapsed: float = 0.0, max_seconds: float | None = None) -> float:
        """The learning rates' factor now: 1 - the fraction of the budget spent (steps of the total, seconds of
        ``max_seconds``, whichever is further) with ``lr_schedule="linear"``; 1 with ``"constant"``."""
        if self.options.lr_schedule == "constant":
            return 1.0
        spent = self.step / self.total if self.total < UNTIL_STOPPED else 0.0
        if max_seconds:
            spent = max(spent, elapsed / max_seconds)
        return max(0.0, 1.0 - spent)

    def train_step(self, lr_scale: float = 1.0) -> dict[str, float]:
        """One Adam step on the next batch, the learning rates times ``lr_scale``; returns the weighted losses."""
        o = self.options
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * lr_scale
        x = self.data.batch(self.step, o.batch_size).to(self.device)
        x = x.contiguous(memory_format=self.memory_format)
        targets = self.loss.content_targets(x)
        self.optimizer.zero_grad(set_to_none=True)
        y = self.net(x)
        parts = self.loss(y, targets)
        weighted = {"content": o.content_weight * parts["content"], "style": o.style_weight * parts["style"],
                    "tv": o.tv_weight * parts["tv"]}  # fmt: skip
        total = weighted["content"] + weighted["style"] + weighted["tv"]
        if not torch.isfinite(total):
            raise InputError(f"the training loss became {float(total)} at step {self.step + 1}; try a lower --lr")
        total.backward()
        self.optimizer.step()
        self.step += 1
        return {"loss": total.item(), **{k: v.item() for k, v in weighted.items()}}

    def run(self, callback: Callable[[TrainInfo], None] | None = None, max_seconds: float | None = None) -> TrainResult:
        """Train up to the total step count (or for ``max_seconds`` of this run, then stop as if finished), writing
        checkpoints, samples and the history; then the model file."""
        o = self.options
        start = time.perf_counter()
        first = self.step

        def seconds() -> float:
            return self.seconds_before + time.perf_counter() - start

        last_sample = None
        if self.step == 0 and o.sample_every:
            last_sample = self._try(self.write_sample)
        with _deferred_signals() as pending:
            try:
                while self.step < self.total:
                    if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                        break
                    row = self.train_step(self.lr_scale(time.perf_counter() - start, max_seconds))
                    elapsed = time.perf_counter() - start
                    self.history.append({"step": self.step, **row, "seconds": round(seconds(), 3)})
                    sample = None
                    if o.sample_every and self.samples_on and self.step % o.sample_every == 0:
                        sample = last_sample = self._try(self.write_sample)
                    if o.checkpoint_every and self.step % o.checkpoint_every == 0 and self.step < self.total:
                        self.save_checkpoint(seconds())
                    if callback is not None:
                        rate = (self.step - first) * o.batch_size / max(elapsed, 1e-9)
                        parts = {k: row[k] for k in ("content", "style", "tv")}
                        callback(TrainInfo(self.step, self.total, row["loss"], parts, elapsed, rate, sample))
                    if pending:
                        path = self.save_checkpoint(seconds())
                        if self.history_path:
                            write_history(self.history_path, self.history)
                        raise TrainingInterrupted(pending[0], path, self.step)
            except TrainingInterrupted:
                raise
            except KeyboardInterrupt:  # raised by a handler outside this one (not the main thread)
                raise TrainingInterrupted(signal.SIGINT, self.save_checkpoint(seconds()), self.step) from None
        if o.sample_every and self.samples_on and (last_sample is None or self.step % o.sample_every):
            last_sample = self._try(self.write_sample)
        model = self.save_model(seconds())
        if self.history_path:
            write_history(self.history_path, self.history)
        if o.checkpoint_every:
            self.save_checkpoint(seconds())  # the finished state, so a later --resume --steps N can extend it
        return TrainResult(model, self.step, self.history, seconds(), last_sample, self.data.files[0])

    def _try(self, fn: Callable[[], Path]) -> Path | None:
        """Write a sample; a failure is reported once and samples stop (training goes on)."""
        try:
            return fn()
        except OSError as err:
            self.warn(f"impasto: warning: {err}; no more samples")
            self.samples_on = False
            return None
