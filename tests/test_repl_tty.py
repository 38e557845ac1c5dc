"""The chat REPL in a real terminal (tmux: keys typed, screen read back) and through a pipe.

Every wait polls the screen until the expected text appears, bounded by a deadline.
"""

from __future__ import annotations

import os
import signal as signal_module
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

WAIT_S = 60  # the first start imports rich/prompt_toolkit/pydantic on a busy machine



class Terminal:
    """A program running in a detached tmux pane of fixed size."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.sock = f"agentlong-test-{uuid.uuid4().hex[:8]}"
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        self._tmux("new-session", "-d", "-x", "120", "-y", "40", "-c", str(cwd), *env_args,
                   " ".join(_quote(a) for a in argv))
        self._tmux("set-option", "-t", "0", "remain-on-exit", "on")

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True, timeout=20)
        if done.returncode != 0:
            raise RuntimeError(f"tmux {args[0]} failed: {done.stderr}")
        return done.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-S", "-200")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "0", *keys)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "0", "-l", text)
        self.keys("Enter")

    def wait_for(self, text: str, *, count: int = 1, timeout: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if screen.count(text) >= count:
                return screen
            if self.dead() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} (x{count}) not on screen after {timeout}s:\n{self.screen()}")

    def dead(self) -> int | None:
        """The exit status once the program has ended, else None."""
        dead, status, signal = self._tmux("display-message", "-p", "-t", "0",
                                          "#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}").strip().split(":")
        if dead == "1" and not (status or signal):
            # the pane's terminal has closed but tmux has not reaped the program yet. On a loaded machine
            # tmux 3.3a sometimes misses the SIGCHLD and would leave it a zombie for good (seen in CI):
            # a repeated SIGCHLD makes the server run its waitpid loop, which records the exit status.
            os.kill(int(self._tmux("display-message", "-p", "#{pid}").strip()), signal_module.SIGCHLD)
            return None  # polled again
        if dead != "1":
            return None  # running
        return int(status) if status else -int(signal)  # -N: killed by signal N

    def wait_exit(self, timeout: float = 3 * WAIT_S) -> int:  # teardown on a machine busy with model runs
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.dead()
            if status is not None:
                return status
            time.sleep(0.1)
        raise AssertionError(f"the program did not exit within {timeout}s:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True, timeout=20)


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


@pytest.fixture
def term(agentlong_home, tmp_path):
    opened: list[Terminal] = []

    def start(*args: str, argv: list[str] | None = None) -> Terminal:
        env = {"AGENTLONG_HOME": str(agentlong_home), "TERM": "xterm-256color", "COLUMNS": "120",
               "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        t = Terminal(argv or [sys.executable, "-m", "agentlong.cli.main", *args], env, tmp_path)
        opened.append(t)
        return t

    yield start
    for t in opened:
        t.close()


def test_tty_chat_help_unknown_command_and_quit(term, agentlong_home):
    t = term("chat", "--model", "fake", "--session", "tty1")
    t.wait_for("tty1›")
    assert "session tty1 (new, 0 turns)" in t.screen()
    t.type("Hello **bold** world")
    t.wait_for("tty1›", count=2)
    assert "\nHello bold world" in t.screen()  # the echo answer, rendered as Markdown (no asterisks)
    t.type("/help")
    screen = t.wait_for("tty1›", count=3)
    for cmd in ("/load PATH", "/corpus NAME", "/strategy", "/model", "/sources", "/usage", "/save FILE",
                "/session", "/reset", "/quit"):
        assert cmd in screen
    t.type("/frobnicate")
    t.wait_for("unknown command /frobnicate — type /help for the list")
    t.wait_for("tty1›", count=4)
    t.type("/memory")
    t.wait_for("flash memory: turns 1")
    t.wait_for("tty1›", count=5)
    t.type("/quit")
    assert t.wait_exit() == 0
    assert "Traceback" not in t.screen()
    assert "Hello **bold** world" in (agentlong_home / "chat_history").read_text()
    assert (agentlong_home / "chat_history").stat().st_mode & 0o777 == 0o600  # typed lines are private


def test_tty_ctrl_c_at_prompt_stays_and_ctrl_d_leaves(term):
    # control keys are sent only once the prompt is up: before that the terminal is in cooked mode
    t = term("chat", "--model", "fake", "--session", "keys")
    t.wait_for("keys›")
    t.keys("-l", "half a line")
    t.wait_for("keys› half a line")
    t.keys("C-c")
    t.wait_for("keys›", count=2)  # a fresh prompt: Ctrl-C cleared the line and did not leave
    t.type("after ctrl c")
    t.wait_for("keys›", count=3)  # answered (echo) and prompting again
    assert t.screen().count("after ctrl c") == 2 and t.dead() is None
    t.keys("C-d")
    assert t.wait_exit() == 0
    assert "Traceback" not in t.screen()


def test_tty_resume_load_errors_and_history_recall(term, tmp_path):
    t = term("chat", "--model", "fake", "--session", "again")
    t.wait_for("again›")
    t.type("first message")
    t.wait_for("again›", count=2)
    t.type("/load does/not/exist.txt")
    t.wait_for("error: does/not/exist.txt: no such file or folder")
    t.wait_for("again›", count=3)
    t.type("/quit")
    assert t.wait_exit() == 0

    t2 = term("chat", "--model", "fake", "--session", "again")
    t2.wait_for("session again (resumed, 1 turns)")
    t2.wait_for("again›")  # keys typed before the prompt is up would reach the terminal, not the editor
    t2.keys("Up")  # prompt_toolkit history from $AGENTLONG_HOME/chat_history
    t2.wait_for("again› /quit")
    t2.keys("Up")
    t2.wait_for("again› /load does/not/exist.txt")
    t2.keys("C-u")
    t2.type("/save transcript.md")
    t2.wait_for("saved the transcript")
    t2.wait_for("again›", count=2)
    assert "**You:** first message" in (tmp_path / "transcript.md").read_text()
    t2.keys("C-d")
    assert t2.wait_exit() == 0


SLOW_REPL = textwrap.dedent("""
    import sys, time
    from agentlong import Agentlong
    from agentlong.backends.base import Stream
    from agentlong.backends.fake import FakeBackend
    from agentlong.cli.repl import Repl

    class SlowBackend(FakeBackend):
        '''Streams one word every 0.2 s: a slow model, so Ctrl-C can land mid-answer.'''
        def stream(self, messages, *, max_tokens, temperature=0.0, stop=None):
            def deltas():
                for i in range(200):
                    time.sleep(0.2)
                    yield f"word{i} "
            return Stream(deltas(), lambda text: self._completion(messages, text, time.perf_counter(), None))

    app = Agentlong(backend=SlowBackend(mode="echo"), model="fake")
    sys.exit(Repl(app, session="slow", sources=[], strategy=None, tty=True).run())
""")


def test_tty_ctrl_c_stops_the_answer_and_the_session_continues(term, tmp_path):
    script = tmp_path / "slow_repl.py"
    script.write_text(SLOW_REPL)
    t = term(argv=[sys.executable, str(script)])
    t.wait_for("slow›")
    t.type("tell me a long story")
    t.wait_for("word2")
    t.keys("C-c")
    screen = t.wait_for("slow›", count=2)
    assert "answer stopped" in screen and "word199" not in screen
    t.type("/memory")
    t.wait_for("failed/interrupted: 1")
    t.wait_for("slow›", count=3)
    t.type("/quit")
    assert t.wait_exit() == 0


# -- pipe mode -----------------------------------------------------------------------------------
def run_pipe(stdin: str, *args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "AGENTLONG_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "agentlong.cli.main", "chat", "--model", "fake", *args],
                          input=stdin, capture_output=True, text=True, env=env, timeout=120)


def test_pipe_mode_is_plain_and_scriptable(agentlong_home, tmp_path):
    binary = tmp_path / "blob.txt"
    binary.write_bytes(bytes(range(256)) * 64)
    script = f"hi\n/nope\n/load {binary}\n/load {tmp_path / 'missing.md'}\nsecond\n/usage\n/quit\nnever sent\n"
    done = run_pipe(script, "--session", "piped", home=agentlong_home)
    assert done.returncode == 0
    out = done.stdout.splitlines()
    assert out[0] == "hi" and out[1] == "second"
    assert "\x1b[" not in done.stdout  # plain text, no terminal codes
    assert "session piped: 2 calls" in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith(("error:", "unknown"))]
    assert len(errors) == 3 and "Traceback" not in done.stderr
    assert errors[0].startswith("unknown command /nope")
    assert "blob.txt" in errors[1] and "missing.md: no such file or folder" in errors[2]
    assert "never sent" not in done.stdout


def test_pipe_mode_list_and_delete_sessions(agentlong_home):
    run_pipe("one\n", "--session", "alpha", home=agentlong_home)
    env = {**os.environ, "AGENTLONG_HOME": str(agentlong_home)}
    listed = subprocess.run([sys.executable, "-m", "agentlong.cli.main", "chat", "--list"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert listed.returncode == 0 and listed.stdout.startswith("alpha") and "1 turns" in listed.stdout
    gone = subprocess.run([sys.executable, "-m", "agentlong.cli.main", "chat", "--delete", "nosuch"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert gone.returncode == 2 and gone.stderr.count("\n") == 1
    assert gone.stderr.startswith("agentlong: error: no chat session named 'nosuch'")


def test_corrupt_session_database_in_the_cli_is_kept_and_chat_goes_on(agentlong_home):
    agentlong_home.mkdir(parents=True, exist_ok=True)
    (agentlong_home / "sessions.sqlite").write_bytes(b"garbage" * 100)
    done = run_pipe("hello\n", home=agentlong_home)
    assert done.returncode == 0 and done.stdout.strip() == "hello"
    assert "session database was corrupt" in done.stderr
    kept = list(agentlong_home.glob("sessions.sqlite.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"garbage" * 100
