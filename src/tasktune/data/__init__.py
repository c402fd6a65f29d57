from tasktune.data.readers import Example, read_examples
from tasktune.data.splits import DataSplits, load_splits

__all__ = ["Example", "DataSplits", "load_splits", "read_examples"]
