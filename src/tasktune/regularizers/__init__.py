from tasktune.regularizers.smart import Smart, SmartConfig

__all__ = ["Smart", "SmartConfig"]
