from tasktune.serve.app import TaskServer, create_app

__all__ = ["TaskServer", "create_app"]
