"""Chat with Self-Controlled Memory: a persistent memory stream, flash + archived memory, sessions.

>>> from agentlong import Agentlong
>>> from agentlong.memory import Chat
>>> chat = Chat(Agentlong(model="fake"), session="init-demo")
>>> chat.send("hi").turn
1
>>> Chat.delete_session(chat.app, "init-demo")
"""

from __future__ import annotations

from .chat import STRATEGIES, Chat, ChatReply, ChatStream, MemoryStats
from .controller import Budget, Decision, MemoryController, MemoryRef
from .stream import SessionDB, SessionInfo, Turn

__all__ = ["Chat", "ChatReply", "ChatStream", "MemoryStats", "MemoryController", "MemoryRef", "Budget", "Decision",
           "SessionDB", "SessionInfo", "Turn", "STRATEGIES"]
