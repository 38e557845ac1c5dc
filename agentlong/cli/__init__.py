"""The ``agentlong`` command line. Only this package prints or imports rich."""
