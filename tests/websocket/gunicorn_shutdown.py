"""gunicorn config for the SIGTERM test: close every websocket when the worker stops."""


def post_worker_init(worker):
    from tests.websocket.echo_app import close_all_when_stopping

    close_all_when_stopping(worker)
