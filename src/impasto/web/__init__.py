"""``impasto serve``: a local web app over the API, with a persistent job queue run by worker processes.

:mod:`impasto.web.app` (the FastAPI application and its HTTP API), :mod:`impasto.web.jobs` (the SQLite queue),
:mod:`impasto.web.worker` (the worker processes), ``static/`` (the page). Needs the ``web`` extra (FastAPI,
uvicorn, python-multipart).
"""
