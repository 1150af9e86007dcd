"""Running the Node scripts of tests/js as child processes with a deadline."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.servers import ProcessRegistry

from .deployment import JS_DIR


class ScriptFailed(AssertionError):
    """The script crashed, or wrote no result before its deadline."""


@dataclass
class JsRunner:
    node: str
    registry: ProcessRegistry

    def run(
        self, script: str, job: dict[str, Any], workdir: Path, timeout: float
    ) -> dict[str, Any]:
        """Run `node tests/js/<script> job.json result.json` and return the result.

        The script is started in its own process group (the registry's way), so a
        timeout also ends what it started (Chromium). On timeout, a partial
        result file is still returned when the script wrote one; the caller sees
        `timed_out`.
        """
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
        timed_out = False
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            self.registry.stop([proc], grace=5.0)
        log = proc.log_text()[-6000:]
        code = proc.popen.returncode
        if not result_path.exists():
            why = f"no answer after {timeout:.0f}s" if timed_out else f"exit {code}"
            raise ScriptFailed(f"{script}: {why}, no result written. Its output:\n{log}")
        result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
        if code not in (0, None) and not timed_out:
            raise ScriptFailed(f"{script}: exit {code}. Its output:\n{log}")
        result["timed_out"] = timed_out
        result["script_log"] = log
        return result
