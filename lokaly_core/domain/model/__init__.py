"""The domain model: entities, values and the rules that need nothing but them.

One module per business area. Nothing here imports the ports or the services (an
import-linter ``layers`` contract checks it): ``ports.py`` speaks in these types and the
services use both.
"""
