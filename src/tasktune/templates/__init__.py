from tasktune.templates.defaults import default_template
from tasktune.templates.template import Answer, Field, Soft, Template, Text
from tasktune.templates.verbalizer import Verbalizer

__all__ = ["Answer", "Field", "Soft", "Template", "Text", "Verbalizer", "default_template"]
