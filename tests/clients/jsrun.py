"""Running the Node scripts of tests/js as child processes with a deadline, and
answering what they ask the test while they run (control.js ask)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.procs import ManagedProcess
from support.servers import ProcessRegistry

from .deployment import JS_DIR


class ScriptFailed(AssertionError):
    """The script crashed, or wrote no result before its deadline."""


# Answers one kind of question (control.js ask's `what`) from its args.
Answer = Callable[[dict[str, Any]], Any]

ASK_POLL_INTERVAL = 0.01


class Answerer:
    """Answers a script's questions from a thread: ask-N.json -> answer-N.json.

    A question without an answer function, or whose function raises, is answered
    with an error (the script's ask rejects) and kept in `errors` for the test.
    """

    def __init__(self, directory: Path, answers: Mapping[str, Answer]) -> None:
        self.directory = directory
        self.answers = dict(answers)
        self.errors: list[str] = []
        self.asked: list[str] = []
        self._answered: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="js-answerer", daemon=True)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _serve(self) -> None:
        while not self._stop.wait(ASK_POLL_INTERVAL):
            for path in sorted(self.directory.glob("ask-*.json")):
                if path.name not in self._answered:
                    self._answered.add(path.name)
                    self._answer(path)

    def _answer(self, path: Path) -> None:
        number = path.name.removeprefix("ask-")
        question = json.loads(path.read_text(encoding="utf-8"))
        what = question.get("what", "")
        self.asked.append(what)
        answer = self.answers.get(what)
        try:
            if answer is None:
                raise LookupError(f"the test has no answer to {what!r}")
            reply: dict[str, Any] = {"value": answer(question.get("args") or {})}
        except Exception as exc:
            self.errors.append(f"{what} {question.get('args')}: {exc!r}")
            reply = {"error": repr(exc)}
        target = self.directory / f"answer-{number}"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(reply), encoding="utf-8")
        temporary.rename(target)


class Rendezvous:
    """A question (control.js ask) answered only once `parties` scripts have asked it and
    the test has released it: the test acts in between (publishes, changes the servers)
    and gives the answer every script gets."""

    def __init__(self, parties: int, timeout: float) -> None:
        self.parties = parties
        self.timeout = timeout
        self.arrived = 0
        self.value: Any = None
        self._released = threading.Event()
        self._lock = threading.Lock()

    def answer(self, args: dict[str, Any]) -> Any:
        with self._lock:
            self.arrived += 1
        if not self._released.wait(self.timeout):
            raise TimeoutError("the test never released the rendezvous")
        return self.value

    def all_arrived(self) -> bool:
        with self._lock:
            return self.arrived >= self.parties

    def release(self, value: Any) -> None:
        self.value = value
        self._released.set()


@dataclass
class RunningScript:
    """A Node script started by JsRunner.start(), its result not read yet."""

    script: str
    proc: ManagedProcess
    registry: ProcessRegistry
    result_path: Path
    answerer: Answerer | None = field(default=None)

    def exited(self) -> bool:
        return not self.proc.alive()

    def finish(self, timeout: float) -> dict[str, Any]:
        """Wait up to timeout for the script to exit and return its result.

        On timeout the script's process group is ended (Chromium too), and a partial
        result file is still returned when the script wrote one; the caller sees
        `timed_out`.
        """
        timed_out = False
        try:
            self.proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            self.registry.stop([self.proc], grace=5.0)
            if self.answerer is not None:
                self.answerer.stop()
        log = self.proc.log_text()[-6000:]
        code = self.proc.popen.returncode
        if not self.result_path.exists():
            why = f"no answer after {timeout:.0f}s" if timed_out else f"exit {code}"
            raise ScriptFailed(f"{self.script}: {why}, no result written. Its output:\n{log}")
        result: dict[str, Any] = json.loads(self.result_path.read_text(encoding="utf-8"))
        if code not in (0, None) and not timed_out:
            raise ScriptFailed(f"{self.script}: exit {code}. Its output:\n{log}")
        result["timed_out"] = timed_out
        result["script_log"] = log
        if self.answerer is not None:
            result["answer_errors"] = self.answerer.errors
        return result


@dataclass
class JsRunner:
    node: str
    registry: ProcessRegistry

    def start(
        self,
        script: str,
        job: dict[str, Any],
        workdir: Path,
        answers: Mapping[str, Answer] | None = None,
    ) -> RunningScript:
        """Start `node tests/js/<script> job.json result.json` in its own process group
        (the registry's way, so ending it also ends what it started: Chromium).

        With `answers`, the job gets `askDir` and the script's questions are
        answered until it finishes (see Answerer)."""
        workdir.mkdir(parents=True, exist_ok=True)
        answerer = None
        if answers is not None:
            answerer = Answerer(workdir / "asks", answers)
            job = {**job, "askDir": str(answerer.directory)}
            answerer.start()
        job_path = workdir / "job.json"
        result_path = workdir / "result.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        result_path.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKHOP_")}
        env.pop("DEBUG", None)  # sockjs-client's debug output would swamp the log
        proc = self.registry.start(
            f"node-{Path(script).stem}",
            [self.node, str(JS_DIR / script), str(job_path), str(result_path)],
            env=env,
            cwd=JS_DIR,
        )
        return RunningScript(script, proc, self.registry, result_path, answerer)

    def run(
        self,
        script: str,
        job: dict[str, Any],
        workdir: Path,
        timeout: float,
        answers: Mapping[str, Answer] | None = None,
    ) -> dict[str, Any]:
        """Run the script to its end (see start() and RunningScript.finish())."""
        return self.start(script, job, workdir, answers).finish(timeout)
