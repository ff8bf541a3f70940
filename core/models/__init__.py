"""The families: one package each, the only place a family registers itself and its models.

core.registry imports every package here; a new family is a new package
whose __init__ calls register_family and register_model.
"""
