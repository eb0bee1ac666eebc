"""impasto: neural style transfer (Gatys et al., AdaIN) for the command line, Python and the web."""

# First: a Ctrl-C while the command imports its modules ends it in one line (see impasto.startup).
from . import startup  # noqa: F401  # isort: skip
from .api import stylize
from .options import PRESETS, Options, make_options
from .version import __version__
from .video import stylize_video

__all__ = ["PRESETS", "Options", "__version__", "make_options", "stylize", "stylize_video"]
