from .fixtures import artifacts, browser  # noqa: F401
