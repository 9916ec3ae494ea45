"""The gateway's routes, one module per concept; ``create_app`` assembles them.

Each module has a ``router(...)`` function that takes what its routes use and returns
an ``APIRouter``; nothing here reads a global.
"""
