"""The HTTP server (needs the `serve` extra: FastAPI, uvicorn). Its names load on first use, so the
rest of tasktune (the CLI's train, evaluate ...) runs where FastAPI is not installed."""


def __getattr__(name: str):
    if name in ("TaskServer", "create_app"):
        from tasktune.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'tasktune.serve' has no attribute {name!r}")


__all__ = ["TaskServer", "create_app"]
