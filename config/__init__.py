"""The settings every layer reads (settings.py) and the project's configuration files beside them."""
