"""Browser glue: the only part of ``app`` that imports ``js``/``pyodide``."""
