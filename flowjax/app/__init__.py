"""The live editor (``configs/explore.py``): a Flask app on loopback that moves an
uploaded face through Glow's latent space, with its page assets in ``static/``.

May import: flowjax.runs, flowjax.transfer, flowjax.faces, flowjax.io.
"""

from flowjax.app.explore import Editor, create_app, serve

__all__ = ["Editor", "create_app", "serve"]
