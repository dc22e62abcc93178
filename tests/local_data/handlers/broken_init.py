"""A handler module whose import fails: an init error."""

raise RuntimeError("model could not be loaded")


def handler(event, context):  # pragma: no cover - never reached
    return {}
