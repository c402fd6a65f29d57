from tasktune.engine.batch import Batch, collate
from tasktune.engine.encoding import Row, TemplateEncoder
from tasktune.engine.forward import score_logprobs

__all__ = ["Batch", "Row", "TemplateEncoder", "collate", "score_logprobs"]
