"""mamabear: run crews of CrewAI agents from the terminal, scripts and CI."""

__version__ = "0.1.0"
