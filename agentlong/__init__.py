"""agentlong: agentic long-document processing.

``import agentlong`` is light: model runtimes, chromadb and torch load only when used.

>>> import agentlong
>>> al = agentlong.Agentlong(model="fake")
>>> al.backend.name
'fake'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .errors import AgentlongError  # noqa: E402
from .settings import Settings  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from .api import Agentlong

__all__ = ["Agentlong", "AgentlongError", "Settings", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Agentlong":
        from .api import Agentlong

        return Agentlong
    raise AttributeError(name)
