"""Published weights' formats, read without their frameworks: TensorFlow GraphDefs.

* ``graphdef`` -- GraphDef messages as plain dataclasses;
* ``graphdef_reader`` -- binary ``.pb`` files parsed (never executed) into them;
* ``graphdef_writer`` -- and written back (the test fixtures of the converters).

The converters themselves are ``weights/convert_openai.py`` and
``weights/convert_rosinality.py``.

May import: flowjax.io.
"""

from flowjax.convert.graphdef import GraphDef, GraphDefError, NodeDef, Tensor
from flowjax.convert.graphdef_reader import parse_graphdef, read_graphdef
from flowjax.convert.graphdef_writer import serialize_graphdef, write_graphdef

__all__ = ["GraphDef", "NodeDef", "Tensor", "GraphDefError", "parse_graphdef", "read_graphdef",
           "serialize_graphdef", "write_graphdef"]
