"""Runs `ptdit` command lines for the tests, each in its own process, without paying the import each time.

The server imports ptdit's commands once (torch and diffusers take seconds to import), then forks a child per
request: the child sets its working folder and umask, points its stdout and stderr (file descriptors 1 and 2)
at files, runs `ptdit.cli.main(argv)` as the `ptdit` console script does and exits with its return code (an
uncaught exception prints its traceback and exits 1, as Python does). The parent answers with the child's
exit code, stdout and stderr.

Protocol: one JSON request per line on stdin, {"argv": [...], "cwd": "...", "umask": 18 or null}; one JSON
reply per line on stdout, {"rc": int, "out": str, "err": str}.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback

import ptdit.cli  # noqa: F401 - imported once, before the forks
import ptdit.evaluate  # noqa: F401
import ptdit.pipeline  # noqa: F401
import ptdit.train  # noqa: F401


def _child(request: dict, out: int, err: int) -> None:
    code = 1
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.chdir(request["cwd"])
        if request.get("umask") is not None:
            os.umask(request["umask"])
        sys.argv = ["ptdit", *request["argv"]]
        from ptdit.cli import main

        code = main(request["argv"])
    except SystemExit as e:  # argparse exits 2 on a syntax error, 0 after --help
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - what an uncaught exception would print
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run(request: dict) -> dict:
    sys.stdout.flush()  # nothing buffered may be inherited by the child
    sys.stderr.flush()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            _child(request, out.fileno(), err.fileno())
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return {
            "rc": os.waitstatus_to_exitcode(status),
            "out": out.read().decode(errors="replace"),
            "err": err.read().decode(errors="replace"),
        }


def serve() -> None:
    replies = os.fdopen(os.dup(1), "w")  # the reply channel; fd 1 itself goes to stderr, so that nothing
    os.dup2(2, 1)  # printed by the server mixes into the replies
    for line in sys.stdin:
        replies.write(json.dumps(run(json.loads(line))) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
