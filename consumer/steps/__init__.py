"""One module per stage of the task state machine. Each exposes ``run(msg, svc) -> Next``."""
