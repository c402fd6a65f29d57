from tasktune.backbone.loader import Backbone, load_backbone

__all__ = ["Backbone", "load_backbone"]
