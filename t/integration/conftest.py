"""pytest fixtures for torii's integration tests.

    procs         function scope: a Procs, everything it started is stopped at teardown
    module_procs  module scope: the same, shared by the tests of one file

    p = procs
    a = p.backend("a")                      # started backend.py, a.port
    t = p.torii(config_text)                # started torii, ready when its listens accept
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


class Procs:
    def __init__(self, tmpdir):
        self.tmpdir = str(tmpdir)
        self.items = []
        self.count = 0

    def _dir(self, name):
        self.count += 1
        d = os.path.join(self.tmpdir, "%s-%d" % (name, self.count))
        os.makedirs(d, exist_ok=True)
        return d

    def backend(self, name="backend", mode="normal", script="backend.py", extra_args=()):
        b = harness.Backend(name, mode=mode, workdir=self._dir("backend-" + name), script=script,
                            extra_args=extra_args)
        self.items.append(b)
        return b.start()

    def torii(self, config_text, start=True, wait_ports=None, timeout=10.0, rlimits=None):
        t = harness.Torii(config_text, workdir=self._dir("torii"), wait_ports=wait_ports,
                          rlimits=rlimits)
        self.items.append(t)
        if start:
            t.start(timeout=timeout)
        return t

    def toriis(self):
        return [x for x in self.items if isinstance(x, harness.Torii)]

    def stop_all(self):
        for x in reversed(self.items):
            try:
                x.stop()
            except Exception as e:  # keep stopping the others
                print("teardown: stopping %r failed: %s" % (x, e))



def _stop_and_check(p):
    p.stop_all()
    reports = harness.take_sanitizer_findings()
    if reports:
        pytest.fail("sanitizer findings in torii's stderr:\n" + "\n".join(reports),
                    pytrace=False)


@pytest.fixture(autouse=True)
def no_sanitizer_findings():
    """Fails a test when a torii it ran outside the fixtures (harness.Torii, run_torii)
    printed a sanitizer report: ASan, UBSan, or a LeakSanitizer report at any process's
    exit. Those of procs / module_procs are checked as they stop."""
    yield
    reports = harness.take_sanitizer_findings()
    if reports:
        pytest.fail("sanitizer findings in torii's stderr:\n" + "\n".join(reports),
                    pytrace=False)


_active = []  # Procs alive now, for attaching torii's log to failure reports


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    _active.append(p)
    try:
        yield p
    finally:
        _active.remove(p)
        _stop_and_check(p)


@pytest.fixture(scope="module")
def module_procs(tmp_path_factory):
    p = Procs(tmp_path_factory.mktemp("torii-module"))
    _active.append(p)
    try:
        yield p
    finally:
        _active.remove(p)
        _stop_and_check(p)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for p in _active:
            for t in p.toriis():
                log = t.log()
                state = "running" if t.alive() else "exited rc=%s" % (
                    t.proc.returncode if t.proc else None)
                rep.sections.append(("torii stderr (%s, %s)" % (t.workdir, state),
                                     log[-6000:] or "(empty)"))
