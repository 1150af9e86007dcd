"""Running the Node scripts of tests/js as child processes with a deadline."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.procs import ManagedProcess
from support.servers import ProcessRegistry

from .deployment import JS_DIR


class ScriptFailed(AssertionError):
    """The script crashed, or wrote no result before its deadline."""


@dataclass
class RunningScript:
    """A Node script started by JsRunner.start(), its result not read yet."""

    script: str
    proc: ManagedProcess
    registry: ProcessRegistry
    result_path: Path

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
        return result


@dataclass
class JsRunner:
    node: str
    registry: ProcessRegistry

    def start(self, script: str, job: dict[str, Any], workdir: Path) -> RunningScript:
        """Start `node tests/js/<script> job.json result.json` in its own process group
        (the registry's way, so ending it also ends what it started: Chromium)."""
        workdir.mkdir(parents=True, exist_ok=True)
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
        return RunningScript(script, proc, self.registry, result_path)

    def run(
        self, script: str, job: dict[str, Any], workdir: Path, timeout: float
    ) -> dict[str, Any]:
        """Run the script to its end (see start() and RunningScript.finish())."""
        return self.start(script, job, workdir).finish(timeout)
