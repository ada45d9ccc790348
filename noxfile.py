"""Developer sessions: `nox` runs lint, mypy and the tests; the others on demand (`nox -s NAME`)."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "mypy", "tests"]
nox.options.default_venv_backend = "venv"

# Debian's interpreter: the rootless tests run it as an unprivileged user.
PYTHON = "/usr/bin/python3"
CGROUP2_VM = os.path.join(os.path.dirname(__file__), "..", "shared", "tools", "cgroup2-vm")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session(python=PYTHON)
def mypy(session: nox.Session) -> None:
    session.install("mypy", "-e", ".[test]")
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def reliability(session: nox.Session) -> None:
    """The reliability suite at full size; writes docs/reliability.md (as root)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "tests/reliability", *session.posargs,
                env={"NSBOX_RELIABILITY": "full", "NSBOX_HYPOTHESIS_EXAMPLES": "3000",
                     "NSBOX_RELIABILITY_REPORT": "docs/reliability.md"})


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Every benchmark against crun, runc, bubblewrap and unshare: one markdown report and a
    PNG chart in benchmarks/results (as root; about 40 min, --quick for a smoke run). The
    peers come from the distribution's packages, installed here."""
    session.run("benchmarks/setup", external=True)
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/suite.py", *session.posargs)


@nox.session(python=False)
def cgroup2(session: nox.Session) -> None:
    """The cgroup-version-dependent tests inside a pure cgroup v2 guest (slow: emulated)."""
    if not os.path.exists(CGROUP2_VM):
        session.skip("../shared/tools/cgroup2-vm is not here (it exists in nsbox's CI only)")
    session.run(CGROUP2_VM, "--", ".venv/bin/python", "-m", "pytest", "-p", "no:cacheprovider",
                "-m", "cgroup", *session.posargs, external=True)


@nox.session(python=PYTHON)
def build_check(session: nox.Session) -> None:
    """Build the wheel and import the extension from the installed wheel, in isolated mode."""
    session.install("build")
    session.run("python", "-m", "build", "--wheel", "--outdir", session.create_tmp())
    wheels = [f for f in os.listdir(session.create_tmp()) if f.endswith(".whl")]
    session.install(os.path.join(session.create_tmp(), wheels[-1]), "--force-reinstall")
    session.run("python", "-Ic", "import nsbox; print(nsbox.run(['true']).returncode)")
