"""Plugins: the registry and one module per plugin. Importing this package registers them all."""
