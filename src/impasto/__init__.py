"""impasto: neural style transfer (Gatys et al., AdaIN) for the command line, Python and the web."""

from .api import stylize
from .options import PRESETS, Options, make_options
from .version import __version__
from .video import stylize_video

__all__ = ["PRESETS", "Options", "__version__", "make_options", "stylize", "stylize_video"]
