"""impasto: neural style transfer (Gatys et al., AdaIN) for the command line, Python and the web."""

__version__ = "0.1.0"

from .api import stylize  # noqa: E402
from .options import PRESETS, Options, make_options  # noqa: E402

__all__ = ["PRESETS", "Options", "__version__", "make_options", "stylize"]
