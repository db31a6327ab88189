"""The shared long-term memory: CrewAI's unified Memory on a Chroma store, with a local embedder."""
