"""`python -m nsbox check` and `python -m nsbox run` on the real kernel."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import run_rootless


def _nsbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsbox", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_check_reports_every_namespace_ok_as_root() -> None:
    """As root on this kernel every namespace can be created and check exits 0."""
    proc = _nsbox("check")
    assert proc.returncode == 0, proc.stdout
    for name in ("user", "pid", "net", "uts", "ipc", "mount", "cgroup", "time"):
        assert any(line.startswith("ok") and f"{name} namespace" in line
                   for line in proc.stdout.splitlines()), name
    assert "clone3" in proc.stdout and "cgroups" in proc.stdout


def test_check_rootless_reports_privileges(rootless_python: list[str]) -> None:
    """Unprivileged, check says rootless and still creates namespaces via a user namespace."""
    result = run_rootless(rootless_python, """
        import json
        from nsbox.check import run_checks
        print(json.dumps({f.name: [f.ok, f.detail] for f in run_checks()}))
    """)
    assert result["privileges"][1].startswith("rootless")
    assert result["pid namespace"][0] is True


def test_run_passes_the_exit_status() -> None:
    """`nsbox run -- CMD` runs CMD in a container and exits with its status."""
    proc = _nsbox("run", "--hostname", "cli", "--", "sh", "-c", "hostname; exit 3")
    assert (proc.returncode, proc.stdout) == (3, "cli\n")


def test_run_reports_a_missing_program() -> None:
    """A missing program is reported with its name and exit status 125."""
    proc = _nsbox("run", "--", "no-such-program-nsbox")
    assert proc.returncode == 125 and "no-such-program-nsbox" in proc.stderr
