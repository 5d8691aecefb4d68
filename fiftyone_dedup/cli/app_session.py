"""The FiftyOne App opened by ``--app`` on the duplicates found, until Ctrl-C."""

import os


def open_app(results):
    import sys as _sys

    import fiftyone as fo

    view = results.view()
    # without a display there is no browser to open: serve and print the URL
    headless = _sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
    # an address set by the user wins over FiftyOne's 0.0.0.0 in containers
    address = os.environ.get("FIFTYONE_DEFAULT_APP_ADDRESS") or None
    session = fo.launch_app(view, auto=False, remote=headless, address=address)
    print(f"App: {_browser_url(session)} (Ctrl-C to stop)", flush=True)
    try:
        if not headless:
            try:
                session.open_tab()
            except Exception:  # noqa: BLE001 - no browser: the URL is printed
                pass
        session.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop_app(session)


def _browser_url(session):
    """The App's URL as a browser opens it: a server listening on every
    address (0.0.0.0, as in a container) is reached through localhost."""
    if session.config.proxy_url:
        return session.url
    address = session.server_address
    if not address or address in ("0.0.0.0", "::", "[::]"):
        address = "localhost"
    elif ":" in address and not address.startswith("["):
        address = f"[{address}]"  # IPv6
    return f"http://{address}:{session.server_port}/"


def _stop_app(session, grace=0.3):
    """Stops the App server at once: FiftyOne's own stop waits for the
    server's graceful shutdown, which takes half a minute on a busy machine.
    The server only serves the database, so nothing is lost."""
    import psutil

    import fiftyone.core.session.session as fosess

    session._disable_wait_warning = True  # no "call session.wait()" hint
    service = fosess._server_services.pop(session.server_port, None)
    child = getattr(service, "child", None)
    if child is None:
        return
    try:
        top = psutil.Process(child.pid)
        procs = top.children(recursive=True) + [top]
    except psutil.Error:
        procs = []
    for signal_them in ("terminate", "kill"):
        for p in procs:
            try:
                getattr(p, signal_them)()
            except psutil.Error:
                pass
        procs = _wait_gone(procs, grace)
        if not procs:
            break
    try:
        child.stdin.close()
        child.wait(timeout=grace)  # reaps the service process
    except Exception:  # noqa: BLE001 - already gone
        pass


def _wait_gone(procs, timeout):
    """The processes still running after up to ``timeout`` seconds (a
    zombie counts as gone: only its parent can reap it)."""
    import time

    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for p in procs:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.Error:
                pass
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)
