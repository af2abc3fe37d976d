"""Cell segmentation hub export page: the pure core (runs in CPython and in Pyodide).

Nothing in this package except ``app.browser`` imports ``js`` or ``pyodide``.
"""
