"""flowjax: Glow in JAX/Flax for expression transfer and attribute manipulation.

The distribution is named ``flowjax-glow``; the import package is ``flowjax``.
"""

__version__ = "0.1.0"
