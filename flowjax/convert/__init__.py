"""Converting published weights: their formats read without their frameworks, and what the converters share.

* ``graphdef`` -- TensorFlow GraphDef messages as plain dataclasses;
* ``graphdef_reader`` -- binary ``.pb`` files parsed (never executed) into them;
* ``graphdef_writer`` -- and written back (the test fixtures of the converters);
* ``published`` -- the converters' error, their listing of names in messages
  and the record of the file they read;
* ``pickles`` -- why PyTorch's safe loader refused a file (pickled code, named,
  or not a checkpoint), read from the pickle's opcodes without running it.

The converters themselves are ``weights/convert_openai.py`` (OpenAI's graph)
and ``weights/convert_rosinality.py`` (a PyTorch state_dict, read with
``torch.load(weights_only=True)``).

May import: flowjax.io.
"""

from flowjax.convert.graphdef import GraphDef, GraphDefError, NodeDef, Tensor
from flowjax.convert.graphdef_reader import parse_graphdef, read_graphdef
from flowjax.convert.graphdef_writer import serialize_graphdef, write_graphdef
from flowjax.convert.published import ConversionError, listed, source_record

__all__ = ["GraphDef", "NodeDef", "Tensor", "GraphDefError", "parse_graphdef", "read_graphdef",
           "serialize_graphdef", "write_graphdef", "ConversionError", "listed", "source_record"]
