"""decoupage-bv: polygons of French polling stations (bureaux de vote) from the electoral roll."""

__version__ = "0.1.0"

from ._errors import DecoupageError, InputError, OutputError  # noqa: E402
from .settings import Params  # noqa: E402
from .pipeline import BuildResult, build  # noqa: E402

__all__ = ["BuildResult", "DecoupageError", "InputError", "OutputError", "Params", "build", "__version__"]
