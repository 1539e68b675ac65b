"""Runs benchmark scripts' `--smoke` budgets one after another in this process.

    python tests/_smoke_runner.py OUTPUT_FOLDER SCRIPT...

Starting Python and Keras costs 5 to 7 s a process, more than most smoke
runs: `tests/test_benchmarks.py` starts two of these runners, each paying it
once for half of the scripts. Each script runs as `__main__` with
`sys.argv = [script, "--smoke"]`, in a temporary working folder (no results
file lands in the checkout), its stdout and stderr (file descriptors 1 and
2, so what its own subprocesses print too) in `NAME.out` and `NAME.err` in
OUTPUT_FOLDER, and its exit status in `NAME.rc` (1 and the traceback in
`NAME.err` where it raised).
"""

import os
import runpy
import sys
import tempfile
import traceback
from pathlib import Path


def _run(script: Path) -> int:
    sys.argv = [str(script), "--smoke"]
    sys.path.insert(0, str(script.parent))  # the scripts' `import _common`
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # reported, then the next script runs
        traceback.print_exc()
        return 1
    finally:
        sys.path.remove(str(script.parent))
    return 0


def main() -> None:
    output = Path(sys.argv[1]).resolve()
    scripts = [Path(s).resolve() for s in sys.argv[2:]]
    saved, here = (os.dup(1), os.dup(2)), os.getcwd()
    for script in scripts:
        with (
            open(output / f"{script.name}.out", "w") as out,
            open(output / f"{script.name}.err", "w") as err,
            tempfile.TemporaryDirectory() as folder,
        ):
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            os.chdir(folder)
            try:
                code = _run(script)
            finally:
                os.chdir(here)
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
        (output / f"{script.name}.rc").write_text(str(code))


if __name__ == "__main__":
    main()
