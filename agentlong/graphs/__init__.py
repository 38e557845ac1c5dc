"""LangGraph graphs: chain-of-agents, map-reduce, retrieve-then-reason, full context, writer, router."""
