"""Tools from outside the sandbox: crewai-tools classes by name, a project's own tools, the web group."""
