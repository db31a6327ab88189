"""CrewAI Flows run as mamabear runs: a flow project found at its root, its methods the steps of one run."""
