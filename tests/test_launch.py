"""The entry point's allocator choice (cli/launch.py): when it re-executes, with what, and never twice."""

import os
import subprocess
import sys

import pytest

from tasktune import TasktuneError
from tasktune.cli.launch import ENV, MARK, find_tcmalloc, preload_for


def found():
    return "libtcmalloc_minimal.so.4"


def test_auto_preloads_tcmalloc_where_found_on_linux():
    assert preload_for({}, "linux", "glibc malloc", found) == "libtcmalloc_minimal.so.4"
    assert preload_for({ENV: "auto"}, "linux", "glibc malloc", found) == "libtcmalloc_minimal.so.4"
    assert preload_for({}, "linux", "glibc malloc", lambda: None) is None


@pytest.mark.parametrize("env,platform,loaded", [
    ({ENV: "system"}, "linux", "glibc malloc"),           # the user's choice
    ({}, "darwin", "system malloc"),                      # no LD_PRELOAD there
    ({MARK: "libtcmalloc_minimal.so.4"}, "linux", "glibc malloc"),  # already re-executed once (a failed preload)
    ({}, "linux", "jemalloc"),                            # the user preloaded an allocator of their own
])
def test_runs_as_is(env, platform, loaded):
    assert preload_for(env, platform, loaded, found) is None


def test_a_path_is_checked_before_anything_runs(tmp_path):
    lib = tmp_path / "libmine.so"
    with pytest.raises(TasktuneError, match=f"{ENV}=.*libmine.so: no such file"):
        preload_for({ENV: str(lib)}, "linux", "glibc malloc", found)
    lib.write_bytes(b"")
    assert preload_for({ENV: str(lib)}, "linux", "glibc malloc", found) == str(lib)


PROBE = ("import sys; from tasktune.provenance import allocator; print('ALLOC', allocator(), flush=True); "
         "sys.argv = ['tasktune', 'models']; from tasktune.cli.launch import main; main()")


def _probe(**env):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                         env={**{k: v for k, v in os.environ.items() if k not in (ENV, MARK)}, **env})
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line.startswith("ALLOC")], out.stdout


@pytest.mark.skipif(sys.platform != "linux" or find_tcmalloc() is None, reason="no tcmalloc on this machine")
def test_the_command_reruns_once_on_tcmalloc():
    allocs, stdout = _probe()
    assert allocs == ["ALLOC glibc malloc", "ALLOC tcmalloc"]  # re-executed once, then the command itself
    assert "smollm2-135m" in stdout
    allocs, _ = _probe(**{ENV: "system"})
    assert allocs == ["ALLOC glibc malloc"]


def test_a_bad_choice_is_one_line_and_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "tasktune.cli", "models"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, ENV: str(tmp_path / "none.so")})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"error: {ENV}=")
