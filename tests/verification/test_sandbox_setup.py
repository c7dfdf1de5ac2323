"""Setting up the trusted cluster's sandbox: strict refusals, fallbacks, arguments, the init.

What the sandbox prevents and bounds (network, writes, time, output) is
`test_sandbox.py`. Nothing here needs the namespaces: the refusals and
fallbacks run with a missing, fake or denied unshare(1), and the init script
runs in-process without a mount namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from computewatch.errors import CheckUnavailable, ComputeWatchError, ParameterError
from computewatch.verification import _sandbox, _sandbox_init, _sandbox_root
from computewatch.verification._sandbox import (
    UNSHARE_ENV,
    Isolation,
    IsolationUnavailable,
    Layer,
    SandboxError,
    SandboxFailed,
    SandboxOutputTooLarge,
    SandboxTimeout,
    probe_isolation,
    run_isolated,
)
from tests.verification.sandbox_kit import missing_unshare, py

if TYPE_CHECKING:
    from collections.abc import Sequence


# ---------------------------------------------------------------- strict versus non-strict


def test_strict_refuses_when_unshare_is_missing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    command = py(f"open({str(marker)!r}, 'w')")
    with pytest.raises(IsolationUnavailable) as caught:
        run_isolated(command, inputs=[], unshare=missing_unshare(tmp_path))
    error = caught.value
    assert "expected an executable at" in str(error)
    assert "got none" in str(error)
    assert error.exit_code == 2
    assert isinstance(error, SandboxError)
    assert isinstance(error, CheckUnavailable)
    assert "\n" not in error.diagnostics()
    assert error.diagnostics().startswith("isolation unavailable: trusted cluster")
    assert not marker.exists()  # the command never ran


def test_strict_refuses_when_the_env_var_names_amissing_unshare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UNSHARE_ENV, str(missing_unshare(tmp_path)))
    with pytest.raises(IsolationUnavailable, match="no-such-dir"):
        run_isolated(py("pass"), inputs=[])
    iso = probe_isolation()
    assert not iso.network
    assert iso.method == "none (plain subprocess)"


def test_non_strict_runs_without_namespaces_and_reports_every_missing_layer(
    tmp_path: Path,
) -> None:
    code = (
        "import os; open(os.environ['TMPDIR'] + '/f', 'w').write('x'); print(os.environ['TMPDIR'])"
    )
    out, iso = run_isolated(
        py(code), inputs=[tmp_path], strict=False, unshare=missing_unshare(tmp_path)
    )
    assert iso.method == "none (plain subprocess)"
    for layer in (Layer.NETWORK, Layer.READONLY_INPUTS, Layer.READONLY_FS, Layer.SCRATCH_TMPFS):
        assert layer in iso.missing
        assert dict(iso.reasons)[layer.value]
    assert Layer.PROCESSES in iso.missing
    assert not iso.complete
    assert not Path(out.decode().strip()).exists()  # the host scratch directory was removed


def test_a_fake_unshare_cannot_fake_isolation_or_touch_host_mounts(tmp_path: Path) -> None:
    fake = tmp_path / "unshare"
    fake.write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n')
    fake.chmod(0o755)
    mounts_before = Path("/proc/self/mountinfo").read_text()
    with pytest.raises(IsolationUnavailable) as caught:
        run_isolated(py("pass"), inputs=[tmp_path], unshare=fake)
    message = str(caught.value)
    assert "network (still in the host's network namespace)" in message
    assert "readonly_fs (no private mount namespace)" in message
    assert Path("/proc/self/mountinfo").read_text() == mounts_before


def test_an_unshare_that_is_denied_falls_back_only_when_not_strict(tmp_path: Path) -> None:
    denied = tmp_path / "unshare"
    denied.write_text(
        "#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n"
    )
    denied.chmod(0o755)
    with pytest.raises(IsolationUnavailable, match="unshare failed: Operation not permitted"):
        run_isolated(py("print('ran')"), inputs=[], unshare=denied)
    out, iso = run_isolated(py("print('ran')"), inputs=[], unshare=denied, strict=False)
    assert out == b"ran\n"
    assert iso.method == "none (plain subprocess)"
    probed = probe_isolation(unshare=denied)
    assert probed.missing[:4] == (
        Layer.NETWORK,
        Layer.READONLY_INPUTS,
        Layer.READONLY_FS,
        Layer.SCRATCH_TMPFS,
    )


# ---------------------------------------------------------------- arguments and reports


@pytest.mark.parametrize(
    ("argv", "options", "match"),
    [
        ([], {}, "expected a non-empty sequence of str"),
        ("python", {}, "expected a non-empty sequence of str"),
        (["true"], {"timeout": 0}, "expected a finite number of seconds > 0, got 0"),
        (["true"], {"timeout": float("nan")}, "got nan"),
        (["true"], {"max_output": -1}, "expected a byte count >= 0, got -1"),
        (["true"], {"scratch_bytes": 0}, "expected a byte count > 0, got 0"),
        (["true"], {"inputs": "/etc"}, "expected a sequence of paths, got the single path"),
        (["true"], {"inputs": ["/no/such/input"]}, "expected an existing file or directory"),
        (["true"], {"inputs": ["/run"]}, "expected a location outside /run"),
    ],
)
def test_bad_arguments_are_parameter_errors(
    argv: Sequence[str], options: dict[str, Any], match: str
) -> None:
    options = {"inputs": [], **options}
    if options["inputs"] == ["/run"] and not Path("/run").is_dir():
        pytest.skip("no /run on this host")
    with pytest.raises(ParameterError, match=match):
        run_isolated(argv, **options)


def test_layers_mirror_the_init_script() -> None:
    assert tuple(layer.value for layer in Layer) == _sandbox_init.LAYERS


def test_isolation_report_accessors() -> None:
    partial = Isolation(
        network=False,
        readonly_inputs=True,
        readonly_fs=False,
        scratch_tmpfs=True,
        processes=True,
        no_capabilities=True,
        method="unshare(1) as root",
        reasons=(("network", "skipped"), ("readonly_fs", "/ is writable")),
    )
    assert partial.missing == (Layer.NETWORK, Layer.READONLY_FS)
    assert not partial.complete
    assert partial.summary() == (
        "network=off readonly_inputs=on readonly_fs=off scratch_tmpfs=on processes=on "
        "no_capabilities=on (unshare(1) as root)"
    )
    record = partial.to_dict()
    assert json.loads(json.dumps(record)) == record
    assert record["layers"]["readonly_fs"] is False
    assert record["reasons"] == {"network": "skipped", "readonly_fs": "/ is writable"}
    none = Isolation.none("none", "why")
    assert none.missing == tuple(Layer)
    assert dict(none.reasons) == dict.fromkeys(Layer, "why")


def test_probe_reports_the_layers_with_reasons() -> None:
    probe = probe_isolation()
    assert set(dict(probe.reasons)) == {layer.value for layer in probe.missing}
    assert isinstance(probe.method, str)


def test_sandbox_errors_are_computewatch_errors() -> None:
    for cls in (IsolationUnavailable, SandboxTimeout, SandboxOutputTooLarge, SandboxFailed):
        assert issubclass(cls, SandboxError)
        assert issubclass(cls, ComputeWatchError)


# ---------------------------------------------------------------- the init script, in-process
# Only what is safe in the test process: no mount namespace (so it mounts nothing) and
# no_capabilities skipped (so the test process keeps its capabilities).


def _init_spec(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    spec: dict[str, Any] = {
        "mode": "bare",
        "strict": False,
        "inputs": [],
        "scratch": str(scratch),
        "scratch_bytes": 2**20,
        "skip": [Layer.NO_CAPABILITIES.value],
        "host_ns": {k: str(Path(f"/proc/self/ns/{k}").readlink()) for k in ("net", "mnt", "ipc")},
        "argv": [sys.executable, "-c", "import sys; sys.exit(5)"],
    }
    return spec | overrides


def _run_init(spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, Any]]:
    monkeypatch.chdir(spec["scratch"])  # main() changes directory; restored afterwards
    read, write = os.pipe()
    try:
        code = _sandbox_init.main(["init", json.dumps({**spec, "status_fd": write})])
        with os.fdopen(read, "rb") as f:
            return code, json.loads(f.read())
    finally:
        for fd in (read, write):
            with contextlib.suppress(OSError):
                os.close(fd)


def test_init_in_the_host_namespaces_mounts_nothing_and_reports_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounts_before = Path("/proc/self/mountinfo").read_text()
    spec = _init_spec(tmp_path, mode="isolate", inputs=[str(tmp_path)])
    code, status = _run_init(spec, monkeypatch)
    assert code == 5  # the command ran (non-strict) and its status came back
    assert status["layers"] == dict.fromkeys(_sandbox_init.LAYERS, False)
    assert status["reasons"]["network"] == "still in the host's network namespace"
    assert status["reasons"]["readonly_fs"] == "no private mount namespace"
    assert status["reasons"]["processes"].startswith("not process 1")
    assert status["reasons"]["no_capabilities"] == "skipped on request (unsafe_skip)"
    assert Path("/proc/self/mountinfo").read_text() == mounts_before
    assert {p.name for p in Path(spec["scratch"]).iterdir()} == set(_sandbox_init.SCRATCH_SUBDIRS)


def test_init_refuses_when_strict_and_probes_without_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran"
    argv = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    code, _ = _run_init(_init_spec(tmp_path, strict=True, argv=argv), monkeypatch)
    assert code == _sandbox_init.EXIT_REFUSED
    code, _ = _run_init(_init_spec(tmp_path, mode="probe", argv=argv), monkeypatch)
    assert code == 0
    assert not marker.exists()


def test_init_reports_signals_exec_failures_and_crashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kill = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    code, _ = _run_init(_init_spec(tmp_path, argv=kill), monkeypatch)
    assert code == 128 + 9
    missing = [str(tmp_path / "no-such-program")]
    code, _ = _run_init(_init_spec(tmp_path, argv=missing), monkeypatch)
    assert code == _sandbox_init.EXIT_EXEC_FAILED
    crash = _init_spec(tmp_path, inputs=[str(tmp_path / "gone")], argv=["true"])
    code, status = _run_init(crash, monkeypatch)
    assert code == 0
    assert set(status["reasons"]) == set(_sandbox_init.LAYERS)
    assert status["reasons"]["network"].startswith("sandbox setup crashed: FileNotFoundError")


def test_init_reads_mountinfo_and_capabilities() -> None:
    assert _sandbox_root.unescape(r"/a\040b\134c\0") == "/a b\\c\\0"
    table = _sandbox_init._mounts()
    assert table[_sandbox_init._mount_id("/")][0] == "/"
    report = _sandbox_init._Report()
    _sandbox_init._check_capabilities(report)
    if os.geteuid() == 0:
        assert report.reasons["no_capabilities"].startswith("capability sets not empty")
    assert not report.attempt("network", "fails", os.rmdir, "/no/such/dir")
    assert report.reasons["network"] == "fails: No such file or directory"


def test_unshare_not_on_path_or_not_runnable_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UNSHARE_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(IsolationUnavailable, match=r"not found on PATH \(install util-linux\)"):
        run_isolated(py("pass"), inputs=[])
    garbage = tmp_path / "unshare"
    garbage.write_bytes(b"\x7fELF not really")
    garbage.chmod(0o755)
    with pytest.raises(IsolationUnavailable, match=r"cannot start: .*Exec format error"):
        run_isolated(py("pass"), inputs=[], unshare=garbage)


def test_a_malformed_status_report_is_a_sandbox_error() -> None:
    with pytest.raises(SandboxError, match="expected the init's JSON report, got b'junk'"):
        _sandbox._parse_status(b"junk", "unshare(1) as root")
    with pytest.raises(SandboxError):
        _sandbox._parse_status(b'{"layers": {}, "reasons": {}}', "unshare(1) as root")


def test_the_own_root_check_names_what_of_the_host_still_shows() -> None:
    host = Path("/").stat()
    spec: dict[str, object] = {
        "root": ["/usr", "/etc/passwd"],
        "inputs": ["/srv/job"],
        "hide": ["/srv/job/answers"],
        "scratch": "/srv/scratch",
        "host_root": [host.st_dev, host.st_ino],
    }
    # here (the host) / is the host's root: the check says so before anything else
    assert _sandbox_root.check(spec, ["/"], ()) == "/ is still the host's root"
    spec["host_root"] = [host.st_dev, host.st_ino + 1]
    allowed = ["/", "/usr", "/usr/lib", "/etc/passwd", "/srv/job", "/srv/job/answers", "/proc",
               "/proc/sys", "/dev/null", "/dev/" + "shm", "/srv/scratch", "/run"]  # fmt: skip
    assert _sandbox_root.check(spec, allowed, ["/run"]) == ""
    leaked = [*allowed, "/home", "/usr2", "/etc", "/srv/jobs"]
    assert _sandbox_root.strays(spec, leaked, ["/run"]) == ["/etc", "/home", "/srv/jobs", "/usr2"]
    assert _sandbox_root.check(spec, leaked, ["/run"]).startswith("host paths still visible: /etc")


def test_the_parent_lists_the_system_and_this_python_never_the_repository() -> None:
    paths = _sandbox_root.visible_paths()
    assert "/usr" in paths
    assert str(Path(sys.prefix).resolve()) in paths
    package = Path(_sandbox_root.__file__).resolve().parents[2]
    assert str(package) in paths  # the package's folder (src/ of an editable install)
    assert str(package.parent) not in paths or package.parent == Path(sys.prefix).resolve()
    assert str(Path.cwd()) not in paths or Path.cwd() == Path("/")
