"""The trusted cluster's sandbox: no network, nothing persistent written, bounded.

How the sandbox is set up and degrades (strict refusals, unshare fallbacks,
arguments, the init script) is `test_sandbox_setup.py`.

Tests that need the namespaces skip (with the reason) where this host cannot
create them, except under ``CI=true``, where they fail. Each sandboxed child
is a short ``python -c`` program that tries the forbidden thing and prints a
JSON report of what happened; a control run without isolation shows that the
same program does succeed there, so the tests can fail.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from computewatch.errors import ParameterError
from computewatch.verification._sandbox import (
    Isolation,
    IsolationUnavailable,
    Layer,
    SandboxFailed,
    SandboxOutputTooLarge,
    SandboxTimeout,
    probe_isolation,
    run_isolated,
)
from tests.verification.sandbox_kit import missing_unshare, py

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[2]
HOST_TMP = Path("/tmp")  # noqa: S108 - watched for leaks, never written by the tests
HOST_TMP_DIRS = (HOST_TMP, Path("/var/tmp"), Path("/dev/shm"))  # noqa: S108 - as above

# Tries network access; argv: loopback port, abstract socket name, "all" or "local".
NET_CHILD = r"""
import json, socket, sys
port, abstract, scope = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def attempt(fn):
    try:
        fn()
    except OSError as e:
        return f"{type(e).__name__}:{e.errno}"
    return "ok"

def connect(family, kind, address):
    def go():
        with socket.socket(family, kind) as s:
            s.settimeout(3)
            s.connect(address)
            if kind == socket.SOCK_DGRAM:
                s.send(b"x")
    return go

report = {
    "loopback": attempt(connect(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", port))),
    "abstract_unix": attempt(connect(socket.AF_UNIX, socket.SOCK_STREAM, "\0" + abstract)),
}
if scope == "all":
    report["loopback_other"] = attempt(
        connect(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.2", port))
    )
    report["public_tcp"] = attempt(connect(socket.AF_INET, socket.SOCK_STREAM, ("1.1.1.1", 443)))
    report["public_udp_dns"] = attempt(connect(socket.AF_INET, socket.SOCK_DGRAM, ("8.8.8.8", 53)))
    report["dns_lookup"] = attempt(lambda: socket.getaddrinfo("example.com", 443))
    report["run_listing"] = sorted(__import__("os").listdir("/run"))
print(json.dumps(report))
"""

# Tries to write everywhere; argv: token, input dir, input file, repo, host home, host tmp.
WRITE_CHILD = r"""
import errno, json, os, sys
from pathlib import Path
token, inputs, single, repo, host_home, host_tmp = sys.argv[1:7]
inputs, single = Path(inputs), Path(single)

def attempt(fn):
    try:
        fn()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    return "ok"

def append(path):
    with open(path, "ab") as f:
        f.write(b"tampered")

scratch_file = Path(os.environ["TMPDIR"]) / f"{token}.scratch"
report = {
    "input_new_file": attempt(lambda: (inputs / f"{token}.new").write_bytes(b"x")),
    "input_append": attempt(lambda: append(inputs / "a.txt")),
    "input_nested_append": attempt(lambda: append(inputs / "sub" / "b.bin")),
    "input_chmod": attempt(lambda: os.chmod(inputs / "a.txt", 0o777)),
    "input_utime": attempt(lambda: os.utime(inputs / "a.txt", (0, 0))),
    "input_unlink": attempt(lambda: (inputs / "a.txt").unlink()),
    "input_mkdir": attempt(lambda: (inputs / f"{token}.d").mkdir()),
    "input_rename": attempt(lambda: (inputs / "sub").rename(inputs / f"{token}.sub")),
    "single_file_append": attempt(lambda: append(single)),
    "repo": attempt(lambda: (Path(repo) / f"{token}.repo").write_bytes(b"x")),
    "host_tmp": attempt(lambda: (Path(host_tmp) / f"{token}.tmp").write_bytes(b"x")),
    "host_home": attempt(lambda: (Path(host_home) / f"{token}.home").write_bytes(b"x")),
    "var_tmp": attempt(lambda: Path(f"/var/tmp/{token}.vartmp").write_bytes(b"x")),
    "scratch": attempt(lambda: scratch_file.write_bytes(b"scratch")),
    "home": attempt(lambda: (Path.home() / f"{token}.home").write_bytes(b"home")),
    "dev_shm": attempt(lambda: Path(f"/dev/shm/{token}.shm").write_bytes(b"shm")),
    "cwd": os.getcwd(),
    "env": {k: os.environ[k] for k in ("TMPDIR", "HOME", "XDG_CACHE_HOME",
                                       "TORCHINDUCTOR_CACHE_DIR", "PYTHONDONTWRITEBYTECODE")},
}
report["scratch_readback"] = scratch_file.read_text() if report["scratch"] == "ok" else None
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def isolation() -> Isolation:
    """The isolation this host offers; skips (fails under CI=true) unless complete."""
    probe = probe_isolation()
    if not probe.complete:
        why = "; ".join(f"{layer}: {reason}" for layer, reason in probe.reasons)
        msg = f"full sandbox isolation unavailable here ({probe.summary()}): {why}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return probe


@pytest.fixture
def listener() -> Iterator[tuple[int, str]]:
    """A TCP server on 127.0.0.1 and an abstract Unix socket, both accepting."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    name = f"computewatch-test-{uuid.uuid4().hex}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + name)
    unix.listen(16)
    stop = threading.Event()

    def serve(server: socket.socket) -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in (tcp, unix)]
    for thread in threads:
        thread.start()
    try:
        yield tcp.getsockname()[1], name
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        tcp.close()
        unix.close()


def _tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Return ``{relative path: (mode, size, mtime_ns, sha256)}`` for root and below."""
    tree = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        tree[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return tree


def _make_inputs(tmp_path: Path) -> tuple[Path, Path]:
    inputs = tmp_path / "inputs"
    (inputs / "sub").mkdir(parents=True)
    (inputs / "a.txt").write_text("evidence\n")
    (inputs / "sub" / "b.bin").write_bytes(bytes(range(256)))
    single = tmp_path / "single.bin"
    single.write_bytes(b"weights")
    return inputs, single


# ---------------------------------------------------------------- network


def test_no_network_inside_while_the_same_child_connects_outside(
    isolation: Isolation, listener: tuple[int, str], tmp_path: Path
) -> None:
    port, abstract = listener
    out, iso = run_isolated(py(NET_CHILD, str(port), abstract, "all"), inputs=[], timeout=60)
    inside: dict[str, Any] = json.loads(out)
    assert iso.complete, iso.summary()
    assert iso.method == isolation.method
    for probe in ("loopback", "loopback_other", "public_tcp", "public_udp_dns", "abstract_unix"):
        assert inside[probe] != "ok", (probe, inside)
    assert inside["loopback"] == f"OSError:{errno.ENETUNREACH}"  # no interface is up
    assert inside["dns_lookup"].startswith("gaierror"), inside
    assert inside["run_listing"] == []  # daemon sockets under /run are hidden
    # Control: the same program, run without isolation, reaches both servers.
    out, iso = run_isolated(
        py(NET_CHILD, str(port), abstract, "local"),
        inputs=[],
        strict=False,
        unshare=missing_unshare(tmp_path),
        timeout=60,
    )
    outside = json.loads(out)
    assert outside == {"loopback": "ok", "abstract_unix": "ok"}
    assert not iso.network


@pytest.mark.usefixtures("isolation")
def test_unsafe_skip_network_is_reported_and_refused_when_strict(
    listener: tuple[int, str],
) -> None:
    port, abstract = listener
    command = py(NET_CHILD, str(port), abstract, "local")
    with pytest.raises(IsolationUnavailable, match=r"network \(skipped on request"):
        run_isolated(command, inputs=[], unsafe_skip=[Layer.NETWORK], timeout=60)
    out, iso = run_isolated(
        command, inputs=[], strict=False, unsafe_skip=[Layer.NETWORK], timeout=60
    )
    assert json.loads(out)["loopback"] == "ok"
    assert iso.missing == (Layer.NETWORK,)
    assert dict(iso.reasons)["network"].startswith("skipped on request")
    assert iso.readonly_fs
    assert iso.scratch_tmpfs
    assert iso.processes
    assert iso.no_capabilities


# ---------------------------------------------------------------- filesystem


@pytest.mark.usefixtures("isolation")
def test_writes_nothing_persistent_and_inputs_stay_unchanged(tmp_path: Path) -> None:
    inputs, single = _make_inputs(tmp_path)
    before = _tree(inputs), _tree(single)
    token = f"cw-sandbox-{uuid.uuid4().hex}"
    host_home = Path.home()
    watched = [REPO, host_home, *HOST_TMP_DIRS, inputs]
    argv = py(
        WRITE_CHILD, token, str(inputs), str(single), str(REPO), str(host_home), str(HOST_TMP)
    )
    try:
        out, iso = run_isolated(argv, inputs=[inputs, single], timeout=60)
        report: dict[str, Any] = json.loads(out)
    finally:
        leaked = [p for d in watched if d.is_dir() for p in d.iterdir() if token in p.name]
        for path in leaked:  # clean up before failing: never leave litter in the repo
            if path.is_file():
                path.unlink()
    assert leaked == []
    assert iso.complete, iso.summary()
    for key in (
        "input_new_file",
        "input_append",
        "input_nested_append",
        "input_chmod",
        "input_utime",
        "input_unlink",
        "input_mkdir",
        "input_rename",
        "single_file_append",
    ):
        assert report[key] == "EROFS", (key, report[key])
    # the host's other folders are not in the sandbox's root, or only as read-only
    # parents of what is (the repository of the package's source, /tmp of the scratch)
    for key in ("repo", "host_tmp", "host_home", "var_tmp"):
        assert report[key] in ("EROFS", "ENOENT"), (key, report[key])
    assert (_tree(inputs), _tree(single)) == before
    # The scratch (TMPDIR, HOME, /dev/shm) was writable inside, and is gone now.
    assert report["scratch"] == report["home"] == report["dev_shm"] == "ok"
    assert report["scratch_readback"] == "scratch"
    env = report["env"]
    scratch = Path(env["TMPDIR"]).parent
    assert Path(env["HOME"]).parent == scratch
    assert Path(env["XDG_CACHE_HOME"]).parent == scratch
    assert Path(env["TORCHINDUCTOR_CACHE_DIR"]).is_relative_to(scratch)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert report["cwd"] == env["HOME"]
    assert not scratch.exists()
    assert not Path(env["TMPDIR"], f"{token}.scratch").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("isolation")
def test_child_imports_torch_and_computewatch_from_a_readonly_venv() -> None:
    code = (
        "import json, tempfile, torch, computewatch.errors; "
        "x = torch.arange(6.0).reshape(2, 3); "
        "print(json.dumps({'sum': float((x @ x.T).sum()), 'tmp': tempfile.mkdtemp()}))"
    )
    out, iso = run_isolated(py(code), inputs=[], timeout=300)
    report = json.loads(out)
    assert report["sum"] == 83.0
    assert iso.complete
    assert not Path(report["tmp"]).exists()


# ---------------------------------------------------------------- bounds


@pytest.mark.slow
@pytest.mark.usefixtures("isolation")
def test_timeout_kills_the_child_and_everything_it_started() -> None:
    token = f"cw-sandbox-sleeper-{uuid.uuid4().hex}"
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', sys.argv[1]],"
        " start_new_session=True); time.sleep(120)"
    )
    start = time.monotonic()
    with pytest.raises(SandboxTimeout, match=r"expected to finish within 1 s"):
        run_isolated(py(code, token), inputs=[], timeout=1.0)
    assert time.monotonic() - start < 5.0
    deadline = time.monotonic() + 5.0
    while _processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(token) == []


def _processes_with(token: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if token.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_timeout_without_namespaces_kills_the_process_group(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(SandboxTimeout) as caught:
        run_isolated(
            py("import time; time.sleep(120)"),
            inputs=[],
            strict=False,
            unshare=missing_unshare(tmp_path),
            timeout=0.5,
        )
    assert time.monotonic() - start < 4.0
    assert caught.value.exit_code == 1


@pytest.mark.parametrize("mode", ["isolated", "plain"])
def test_output_cap(mode: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    options: dict[str, Any] = {"inputs": [], "max_output": 100_000, "timeout": 60}
    if mode == "isolated":
        request.getfixturevalue("isolation")
    else:
        options |= {"strict": False, "unshare": missing_unshare(tmp_path)}
    write = "import sys; sys.stdout.buffer.write(b'x' * int(sys.argv[1]))"
    out, _ = run_isolated(py(write, "100000"), **options)
    assert out == b"x" * 100_000
    with pytest.raises(SandboxOutputTooLarge, match=r"expected at most 100000 bytes on stdout"):
        run_isolated(py(write, "100001"), **options)
    with pytest.raises(SandboxOutputTooLarge):
        run_isolated(py(write, str(50 * 2**20)), **options)


@pytest.mark.parametrize("mode", ["isolated", "plain"])
def test_child_failure_gives_one_line_with_its_last_stderr_line(
    mode: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    options: dict[str, Any] = {"inputs": [], "timeout": 60}
    if mode == "isolated":
        request.getfixturevalue("isolation")
    else:
        options |= {"strict": False, "unshare": missing_unshare(tmp_path)}
    code = "import sys; sys.stderr.write('warming up\\nboom: replay diverged\\n\\n'); sys.exit(3)"
    with pytest.raises(SandboxFailed) as caught:
        run_isolated(py(code), **options)
    error = caught.value
    assert str(error) == (
        f"sandboxed command {sys.executable!r}: expected exit status 0, got status 3; "
        "last stderr line: boom: replay diverged"
    )
    assert error.diagnostics() == f"trusted cluster command failed: {error}"
    assert error.exit_code == 1
    with pytest.raises(SandboxFailed, match=r"status 127 \(could not execute\).*no-such-program"):
        run_isolated(["no-such-program-computewatch"], **options)
    kill = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    with pytest.raises(SandboxFailed, match=r"killed by SIGKILL"):
        run_isolated(py(kill), **options)


@pytest.mark.slow
def test_plain_mode_returns_when_the_command_exits_though_a_daemon_holds_stdout(
    tmp_path: Path,
) -> None:
    # Without a PID namespace a setsid() grandchild escapes the process-group kill
    # (the reason the processes layer exists); the parent still returns promptly.
    token = f"cw-sandbox-daemon-{uuid.uuid4().hex}"
    code = (
        "import subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)', sys.argv[1]],"
        " start_new_session=True); print('done')"
    )
    start = time.monotonic()
    try:
        out, _ = run_isolated(
            py(code, token),
            inputs=[],
            strict=False,
            unshare=missing_unshare(tmp_path),
            timeout=20,
        )
    finally:
        for pid in _processes_with(token):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    assert out == b"done\n"
    assert time.monotonic() - start < 10


def test_only_the_tail_of_a_long_stderr_is_kept(tmp_path: Path) -> None:
    code = "import sys; sys.stderr.write('noise\\n' * 50_000 + 'the real cause\\n'); sys.exit(1)"
    with pytest.raises(SandboxFailed, match=r"got status 1; last stderr line: the real cause$"):
        run_isolated(
            py(code), inputs=[], strict=False, unshare=missing_unshare(tmp_path), timeout=60
        )


def test_hidden_paths_show_nothing_inside(tmp_path: Path) -> None:
    secret_dir = tmp_path / "transcript"
    secret_dir.mkdir()
    (secret_dir / "step-6.safetensors").write_bytes(b"target weights")
    key = tmp_path / "cluster.key"
    key.write_bytes(b"PRIVATE KEY")
    job = tmp_path / "job"
    job.mkdir()
    (job / "program.py").write_text("x = 1\n")
    code = (
        "import json, os, sys; "
        "d, k, j = sys.argv[1:]; "
        "print(json.dumps({'dir': os.path.exists(d) and os.listdir(d), "
        "'key': os.path.exists(k) and open(k).read(), 'job': os.listdir(j)}))"
    )
    out, isolation = run_isolated(
        py(code, str(secret_dir), str(key), str(job)), inputs=[job], hide=[secret_dir, key]
    )
    assert isolation.complete
    # outside the sandbox's own root they do not exist
    assert json.loads(out) == {"dir": False, "key": False, "job": ["program.py"]}
    # inside it (here, within an input), an empty cover shows nothing
    (job / "answers").write_bytes(b"target weights")
    read = "import sys; print(repr(open(sys.argv[1], 'rb').read()))"
    out, isolation = run_isolated(
        py(read, str(job / "answers")), inputs=[job], hide=[job / "answers"]
    )
    assert isolation.complete
    assert out.strip() == b"b''"
    # the host still sees them
    assert key.read_bytes() == b"PRIVATE KEY"
    with pytest.raises(ParameterError, match="holds no input"):
        run_isolated(py("pass"), inputs=[job], hide=[tmp_path])


def test_the_sandbox_sees_only_its_inputs_and_the_software_that_runs_it(tmp_path: Path) -> None:
    """Its own root: a file beside an input, the repository, /etc/shadow, /var, /home: absent."""
    job = tmp_path / "job"
    job.mkdir()
    (job / "program.py").write_text("x = 1\n")
    neighbour = tmp_path / "other-prover" / "step-6.safetensors"
    neighbour.parent.mkdir()
    neighbour.write_bytes(b"another Prover's weights")
    code = (
        "import json, os, sys; "
        "via = os.path.lexists('/proc/1/root' + sys.argv[1]); "
        "print(json.dumps({p: os.path.lexists(p) for p in sys.argv[1:]} | "
        "{'root': sorted(os.listdir('/')), 'via_proc': via}))"
    )
    paths = [str(neighbour), str(REPO / "pyproject.toml"), "/etc/shadow", "/var/log", str(job)]
    out, isolation = run_isolated(py(code, *paths), inputs=[job])
    assert isolation.complete, isolation.summary()
    seen = json.loads(out)
    assert [seen[p] for p in paths] == [False, False, False, False, True]
    assert seen["via_proc"] is False
    assert "home" not in seen["root"]
    assert {"usr", "proc", "dev"} <= set(seen["root"])
    # the control: the same program outside a sandbox sees them
    assert neighbour.exists()
    assert (REPO / "pyproject.toml").exists()
