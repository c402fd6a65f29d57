from tasktune.data.readers import Example, read_examples
from tasktune.data.task_data import TaskData, load_task_data

__all__ = ["Example", "TaskData", "load_task_data", "read_examples"]
