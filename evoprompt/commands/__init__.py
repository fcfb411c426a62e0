"""The commands: one module and one `main` each; `evoprompt/__main__.py` only dispatches."""
