"""Drive the real FiftyOne App in headless Chromium.

- :class:`AppServer` runs ``fiftyone app launch`` as a subprocess with the
  test environment (the private database, the plugin on the plugins path).
- :class:`AppPage` drives one browser page: open a dataset, open an operator
  from the operator browser, fill its form, run it now or schedule it, read
  the result dialog, save screenshots.
- :class:`DelegatedWorker` runs ``fiftyone delegated launch`` until the
  scheduled operations it is waited on are done, and stops it with SIGTERM.

The browser is Debian's ``chromium`` (``scripts/bootstrap.sh test``
installs it), driven by Playwright; ``FIFTYONE_DEDUP_CHROMIUM`` names
another binary. Without a browser the tests fail with a message saying how
to get one, unless ``FIFTYONE_DEDUP_SKIP_BROWSER=1`` opts out explicitly.

Operators are found by the label in :data:`OPERATOR_LABELS`: add a new
operator there to drive it. Form fields are found by their label text, as a
user finds them.
"""

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

logger = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: where screenshots and server logs go (gitignored)
ARTIFACTS = os.path.join(REPO, "test-artifacts", "app")

#: set to 1 to skip the browser tests instead of failing without a browser
SKIP_ENV = "FIFTYONE_DEDUP_SKIP_BROWSER"

#: a Chrome or Chromium binary to use instead of Debian's
CHROMIUM_ENV = "FIFTYONE_DEDUP_CHROMIUM"

_CHROMIUM_CANDIDATES = (
    "/usr/bin/chromium",
    "/usr/lib/chromium/chromium",
    "/usr/bin/chromium-browser",
)

#: the default limit of a wait in the page, in milliseconds
TIMEOUT_MS = 60_000

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

#: operator name -> its label in the operator browser
OPERATOR_LABELS = {
    "compute_hashes": "Dedup: compute hashes",
    "find_duplicates": "Dedup: find duplicates",
    "show_duplicates": "Dedup: show duplicate groups",
    "clear_duplicates": "Dedup: clear results",
    "find_cross_duplicates": "Dedup: find duplicates across datasets",
    "move_duplicates": "Dedup: move duplicates",
    "restore_duplicates": "Dedup: restore moved duplicates",
}

# Records each state of the App's progress bars (value and the dialog's
# text), so a test can tell that progress was shown while a run went on,
# and the text of every notification (they vanish after a few seconds).
_RECORDER = r"""
window.__dedupProgress = [];
window.__dedupToasts = [];
const record = () => {
  for (const toast of document.querySelectorAll('.notistack-Snackbar')) {
    const text = toast.innerText.trim();
    if (text && !window.__dedupToasts.includes(text)) window.__dedupToasts.push(text);
  }
  for (const bar of document.querySelectorAll('[role=progressbar][aria-valuenow]')) {
    const box = bar.closest('.MuiDialogContent-root') || bar.parentElement;
    const text = box ? box.innerText.replace(/\s+/g, ' ').trim() : '';
    const entry = {value: Number(bar.getAttribute('aria-valuenow')), text: text};
    const last = window.__dedupProgress[window.__dedupProgress.length - 1];
    if (!last || last.value !== entry.value || last.text !== entry.text) {
      window.__dedupProgress.push(entry);
    }
  }
};
new MutationObserver(record).observe(document, {
  subtree: true, childList: true, attributes: true, characterData: true,
});
"""


# The grid's tiles in the viewport, each as [top, bottom, drawn, error shown]
_TILES_STATE = """() => [...document.querySelectorAll('[data-cy="looker"]')]
  .map(t => [t, t.getBoundingClientRect()])
  .filter(([t, r]) => r.bottom > 0 && r.top < window.innerHeight && r.width > 0)
  .map(([t, r]) => [Math.round(r.top), Math.round(r.bottom),
    !!t.querySelector('canvas[canvas-loaded="true"]'),
    !!t.querySelector('[data-cy="looker-error-info"]')])"""

_TILES_DRAWN = f"""() => {{
  const tiles = ({_TILES_STATE})();
  return tiles.length > 0 && tiles.every(([, , drawn, error]) => drawn || error);
}}"""


def _opt_out_or_fail(reason):
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{reason} ({SKIP_ENV}=1)")
    pytest.fail(
        f"{reason}. Run `bash scripts/bootstrap.sh test`, which installs "
        "Debian's chromium, or `sudo apt-get install chromium "
        f"chromium-driver`, or set {CHROMIUM_ENV} to a Chrome/Chromium "
        f"binary; set {SKIP_ENV}=1 to skip the browser tests explicitly",
        pytrace=False,
    )


def chromium_path():
    """The Chromium binary to drive.

    Returns:
        a path

    Raises:
        pytest's skip or fail outcome if there is none (see the module)
    """
    candidates = [os.environ.get(CHROMIUM_ENV)] + list(_CHROMIUM_CANDIDATES)
    candidates += [shutil.which("chromium"), shutil.which("chromium-browser")]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    _opt_out_or_fail("No Chromium found for the browser tests")


def start_browser():
    """Starts Playwright and headless Chromium.

    Returns:
        ``(playwright, browser)``; stop both when done
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _opt_out_or_fail("Playwright is not installed (pip install playwright)")
    path = chromium_path()
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(
            executable_path=path, args=CHROMIUM_ARGS, headless=True
        )
    except Exception as e:
        pw.stop()
        _opt_out_or_fail(f"Chromium at {path} did not start: {e}")
    logger.info("Chromium %s at %s", browser.version, path)
    return pw, browser


def free_port():
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fiftyone_cli():
    return os.path.join(os.path.dirname(sys.executable), "fiftyone")


def _tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def _stop_group(proc, timeout=20):
    """SIGTERMs a process started in its own session, then SIGKILLs it."""
    if proc.poll() is not None:
        return proc.returncode
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=timeout)


class AppServer:
    """``fiftyone app launch [NAME] --remote`` on a free loopback port.

    Args:
        dataset_name: the dataset the App opens first, or None for none
        log_path: where the server's output goes
        timeout (180): seconds to wait for it to answer
    """

    def __init__(self, dataset_name, log_path, timeout=180):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        self._log = open(log_path, "w")
        # --wait -1: keep serving when no browser is connected (between tests)
        cmd = [_fiftyone_cli(), "app", "launch"]
        cmd += [dataset_name] if dataset_name else []
        cmd += [
            "--remote", "--port", str(self.port), "--address", "127.0.0.1",
            "--wait", "-1",
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT,
            env=os.environ.copy(), start_new_session=True,
        )
        self._wait_until_up(timeout)

    def _wait_until_up(self, timeout):
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"The App server exited with {self.proc.returncode}:\n"
                    + _tail(self.log_path)
                )
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(
                    f"The App server did not answer at {self.url} within "
                    f"{timeout} s:\n" + _tail(self.log_path)
                )
            time.sleep(0.5)

    def dataset_url(self, name):
        """The App's address of a dataset."""
        return f"{self.url}/datasets/{name}"

    def stop(self):
        """Stops the server."""
        _stop_group(self.proc)
        self._log.close()


def wait_for_session(browser, server, dataset_name, timeout=TIMEOUT_MS * 2):
    """Waits until the App's own session has connected to its server.

    ``fiftyone app launch`` answers HTTP before its session is subscribed
    (on a busy machine it retries every 10 s); when it subscribes, it pushes
    its state to every open page, which then drops the dataset the page had
    opened. The session is in once a fresh page at the App's root shows the
    dataset the server was launched with.

    Args:
        browser: a Playwright browser
        server: the :class:`AppServer`, launched with ``dataset_name``
        dataset_name: the dataset it was launched with
        timeout: milliseconds
    """
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.url)
        try:
            page.wait_for_url(f"**/datasets/{dataset_name}**", timeout=timeout)
            page.locator('[data-cy="looker"]').first.wait_for(timeout=timeout)
        except Exception as e:
            raise RuntimeError(
                f"The App at {server.url} never showed its dataset "
                f"{dataset_name!r}:\n" + _tail(server.log_path)
            ) from e
    finally:
        context.close()


class DelegatedWorker:
    """``fiftyone delegated launch``: runs every queued operation in the
    test database until stopped with SIGTERM.

    Args:
        log_path: where the worker's output goes
    """

    def __init__(self, log_path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [_fiftyone_cli(), "delegated", "launch"],
            stdout=self._log, stderr=subprocess.STDOUT,
            env=os.environ.copy(), start_new_session=True,
        )

    def wait_for(self, op_id, timeout=240):
        """Waits until a delegated operation has completed or failed.

        Args:
            op_id: the operation's id
            timeout (240): seconds

        Returns:
            the operation's document
        """
        from fiftyone.operators.delegated import DelegatedOperationService
        from fiftyone.operators.executor import ExecutionRunState

        dos = DelegatedOperationService()
        done = (ExecutionRunState.COMPLETED, ExecutionRunState.FAILED)
        deadline = time.time() + timeout
        while True:
            doc = dos.get(op_id)
            if doc.run_state in done:
                return doc
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"The delegated worker exited with {self.proc.returncode} "
                    f"before operation {op_id} finished:\n" + _tail(self.log_path)
                )
            if time.time() > deadline:
                raise AssertionError(
                    f"Operation {op_id} is still {doc.run_state} after "
                    f"{timeout} s:\n" + _tail(self.log_path)
                )
            time.sleep(0.5)

    def stop(self):
        """Stops the worker with SIGTERM.

        Returns:
            its exit status
        """
        code = _stop_group(self.proc)
        self._log.close()
        return code


class AppPage:
    """One browser page on the App.

    Args:
        context: a Playwright browser context
        server: the :class:`AppServer`
        artifacts: the folder for this test's screenshots
    """

    def __init__(self, context, server, artifacts):
        # shared CI machines can be slow: every wait is on a condition, so a
        # long limit costs time only when something is wrong
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(_RECORDER)
        self.page = context.new_page()
        self.server = server
        self.artifacts = artifacts
        self.console_errors = []
        self.page.on("console", self._on_console)
        self._step = 0
        os.makedirs(artifacts, exist_ok=True)

    def _on_console(self, msg):
        # offline machines cannot fetch web fonts: not the App's fault
        if msg.type == "error" and "ERR_NAME_NOT_RESOLVED" not in msg.text:
            self.console_errors.append(msg.text)

    def screenshot(self, name):
        """Saves a numbered screenshot of the page.

        Returns:
            its path
        """
        self._step += 1
        path = os.path.join(self.artifacts, f"{self._step:02d}-{name}.png")
        self.page.screenshot(path=path)
        return path

    def open_dataset(self, name, timeout=90_000):
        """Opens a dataset and waits for its grid."""
        self.page.goto(self.server.dataset_url(name))
        self.page.locator('[data-cy="looker"]').first.wait_for(timeout=timeout)
        self.dismiss_popover()

    def dismiss_popover(self):
        """Dismisses the "Explore Enterprise" popover if it shows."""
        button = self.page.get_by_role("button", name="Dismiss")
        try:
            button.click(timeout=5000)
        except Exception:  # noqa: BLE001 - not shown this time
            logger.debug("no popover to dismiss")

    def open_operator(self, name):
        """Opens an operator's form from the operator browser.

        Args:
            name: an operator name in :data:`OPERATOR_LABELS`

        Returns:
            an :class:`OperatorForm`
        """
        label = OPERATOR_LABELS[name]
        self.page.locator('[data-cy="action-browse-operations"]').click()
        self.page.locator('[data-cy="operators-browser-search"]').fill(label)
        browser = self.page.locator('[data-cy="operators-browser"]')
        browser.get_by_text(label, exact=True).click()
        modal = self.page.locator('[data-cy="operators-prompt-modal"]')
        modal.wait_for()
        return OperatorForm(self, modal)

    def wait_for_text(self, text, timeout=TIMEOUT_MS):
        """Waits until ``text`` is visible on the page."""
        self.page.get_by_text(text, exact=False).first.wait_for(timeout=timeout)

    def wait_for_grid(self, num_samples, timeout=TIMEOUT_MS):
        """Waits until the grid says it holds ``num_samples`` samples and
        its visible tiles have drawn their images."""
        self.page.get_by_text(f"{num_samples} samples", exact=True).wait_for(
            timeout=timeout
        )
        try:
            self.page.wait_for_function(_TILES_DRAWN, timeout=timeout)
        except Exception as e:
            state = self.page.evaluate(_TILES_STATE)
            raise AssertionError(
                f"The grid's visible tiles were not drawn within {timeout} ms "
                f"(top, bottom, canvas-loaded, error shown): {state}"
            ) from e

    def wait_for_notification(self, text, timeout=TIMEOUT_MS):
        """Waits until a notification containing ``text`` has been shown
        (it may have vanished since)."""
        try:
            self.page.wait_for_function(
                "text => window.__dedupToasts.some(t => t.includes(text))",
                arg=text, timeout=timeout,
            )
        except Exception as e:
            seen = self.page.evaluate("window.__dedupToasts")
            raise AssertionError(
                f"No notification with {text!r} within {timeout} ms; "
                f"seen: {seen}"
            ) from e

    def select_samples(self, count):
        """Selects the first ``count`` samples of the grid by their
        checkboxes."""
        from playwright.sync_api import expect

        tiles = self.page.locator('[data-cy="looker"]')
        for i in range(count):
            tiles.nth(i).hover()
            # the input is drawn by its label
            tiles.nth(i).locator('label[data-cy^="looker-checkbox"]').click()
            expect(
                tiles.nth(i).locator('[data-cy^="looker-checkbox-input"]')
            ).to_be_checked(timeout=TIMEOUT_MS)

    def progress_seen(self):
        """The progress states the page has shown, oldest first.

        Returns:
            a list of ``{"value": percent, "text": dialog text}`` dicts
        """
        return self.page.evaluate("window.__dedupProgress")

    def clear_progress(self):
        """Forgets the progress states seen so far."""
        self.page.evaluate("window.__dedupProgress = []")

    def result_dialog(self, title, timeout=120_000):
        """Waits for a result dialog.

        Args:
            title: its title (or the start of it)
            timeout (120000): milliseconds

        Returns:
            a :class:`ResultDialog`
        """
        dialog = self.page.locator(
            '[data-cy="operators-prompt-view-modal"]', has_text=title
        ).last
        dialog.wait_for(timeout=timeout)
        return ResultDialog(dialog)


# the prompt's run button reads "Execute" or "Schedule" by the mode chosen
_RUN_BUTTON = re.compile(r"^\s*(Execute|Schedule)\s*$")


class OperatorForm:
    """An operator's form in the App's prompt modal."""

    def __init__(self, app, modal):
        self.app = app
        self.modal = modal

    def _label(self, label):
        return f"//p[normalize-space()={_xpath_literal(label)}]"

    def input(self, label):
        """The text or number input under a field label."""
        return self.modal.locator(
            f"xpath={self._label(label)}/following::input[1]"
        )

    def fill(self, label, value):
        """Types a value into the field with this label."""
        box = self.input(label)
        box.fill(str(value))
        box.blur()

    def check(self, label, on=True):
        """Sets the checkbox with this label."""
        box = self.modal.locator(
            f"xpath={self._label(label)}/preceding::input[@type='checkbox'][1]"
        )
        box.set_checked(on)

    def select(self, label, option):
        """Chooses an option of the dropdown with this label."""
        self.modal.locator(
            f"xpath={self._label(label)}/following::*[@role='combobox'][1]"
        ).click()
        self.app.page.get_by_role("option", name=option).first.click()
        self.modal.locator(
            f"xpath={self._label(label)}/following::*[@role='combobox'][1]"
        ).filter(has_text=option).wait_for()

    def pick(self, label, option):
        """Adds an option to the multiple-choice dropdown with this label
        (the choice shows as a chip)."""
        self.modal.locator(
            f"xpath={self._label(label)}/following::*[@role='combobox'][1]"
        ).click()
        self.app.page.get_by_role("option", name=option).first.click()
        self.modal.locator(".MuiChip-root").filter(has_text=option).first.wait_for()
        # close the list (Escape would close the whole form)
        self.modal.locator(f"xpath={self._label(label)}").click()

    def choose(self, option):
        """Clicks a radio option (such as a target) by its label."""
        self.modal.get_by_role("radio", name=option).check()

    def has_text(self, text, timeout=TIMEOUT_MS):
        """Waits until the form shows ``text``."""
        self.modal.get_by_text(text, exact=False).first.wait_for(timeout=timeout)

    def text(self):
        """All the form's text."""
        return self.modal.inner_text()

    def _main_button(self):
        footer = self.modal.locator("button")
        return footer.filter(has_text=_RUN_BUTTON).last

    def wait_runnable(self, runnable=True, timeout=TIMEOUT_MS):
        """Waits until the form has settled with its run button enabled (or,
        with ``runnable=False``, disabled)."""
        from playwright.sync_api import expect

        button = self._main_button()
        try:
            if runnable:
                expect(button).to_be_enabled(timeout=timeout)
            else:
                expect(button).to_be_disabled(timeout=timeout)
        except AssertionError as e:
            state = "enabled" if runnable else "disabled"
            raise AssertionError(
                f"The run button did not become {state} within {timeout} ms; "
                f"the form says:\n{self.text()}"
            ) from e

    def execute(self):
        """Runs the operator now (the default choice)."""
        self._pick_mode("Execute")
        self.wait_runnable()
        self._main_button().click()

    def schedule(self):
        """Schedules the operator (a delegated run)."""
        self._pick_mode("Schedule")
        self.wait_runnable()
        self._main_button().click()

    def _pick_mode(self, mode):
        if self._main_button().inner_text().strip() == mode:
            return
        # the split button's arrow opens the menu of execution modes
        self.modal.locator('[data-testid="ArrowDropDownIcon"]').last.click()
        self.app.page.get_by_role("menuitem", name=mode).click()
        self._main_button().filter(has_text=mode).wait_for()

    def cancel(self):
        """Closes the form without running."""
        self.modal.get_by_role("button", name="Cancel").click()
        self.modal.wait_for(state="hidden")


def _xpath_literal(text):
    if "'" not in text:
        return f"'{text}'"
    parts = text.split("'")
    return "concat(" + ", \"'\", ".join(f"'{p}'" for p in parts) + ")"


class ResultDialog:
    """The App's output dialog showing what a run found."""

    def __init__(self, locator):
        self.locator = locator

    def text(self):
        """The dialog's text."""
        return self.locator.inner_text()

    def value(self, label):
        """The value shown beside a row label.

        Args:
            label: the row's label, without the colon

        Returns:
            the value as text
        """
        lines = [line.strip() for line in self.text().splitlines() if line.strip()]
        for i, line in enumerate(lines[:-1]):
            if line == f"{label}:":
                return lines[i + 1]
        raise AssertionError(f"No row '{label}' in the dialog:\n{self.text()}")

    def click(self, button):
        """Clicks a button in the dialog."""
        self.locator.get_by_role("button", name=button).click()

    def close(self):
        """Closes the dialog ("Done")."""
        self.click("Done")
        self.locator.wait_for(state="hidden")
