"""The program of a python grader's child process: read the input, refuse what it may not do, run ``grade``.

Run as ``python -I sandbox_child.py FOLDER`` by :mod:`graders.sandbox`, which sets the kernel's limits; this
program adds Python's audit hooks before the user's code runs (socket creation, new processes, ctypes and files
outside FOLDER are refused; the Python library may be read so that imports work), then prints one JSON line:
``{"lorag_grade": <float>}`` or ``{"lorag_grade": null, "error": ...}``. What the user's code prints is
dropped. It imports nothing of lorag's (it is a standalone script); it knows nothing about graders' JSON.
"""

import io
import json
import math
import os
import sys
import sysconfig
import traceback

FOLDER = os.path.realpath(sys.argv[1])
LIBRARY = tuple({os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")})
REFUSED = ("socket.", "os.fork", "os.forkpty", "os.exec", "os.spawn", "os.posix_spawn", "os.system", "os.kill",
           "subprocess.", "ctypes.", "os.chdir", "sys.addaudithook", "os.setuid", "os.setgid", "pty.")  # fmt: skip
PATH_EVENTS = {"open": 0, "os.listdir": 0, "os.scandir": 0, "os.remove": 0, "os.rename": 0, "os.mkdir": 0,
               "os.rmdir": 0, "os.chmod": 0, "os.chown": 0, "os.link": 0, "os.symlink": 0, "os.truncate": 0,
               "shutil.rmtree": 0, "glob.glob": 0, "os.utime": 0}  # fmt: skip
NO_IMPORT = {"ctypes", "_ctypes", "_posixsubprocess", "cffi", "_socket", "socket"}


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def _hook(event: str, args: tuple) -> None:
    if event.startswith(REFUSED):
        raise PermissionError(f"a python grader may not do this ({event})")
    if event == "import" and args[0].split(".")[0] in NO_IMPORT:
        raise PermissionError(f"a python grader may not import {args[0]}")
    if event in PATH_EVENTS:
        path = args[0]
        if isinstance(path, int) or path is None:
            return
        path = os.path.realpath(os.fsdecode(path))
        if event == "open":
            mode, flags = args[1] or "", args[2] or 0
            reading = not any(c in str(mode) for c in "wax+") and not flags & (os.O_WRONLY | os.O_RDWR)
        else:
            reading = event in ("os.listdir", "os.scandir", "glob.glob")
        if not _inside(path, (FOLDER, *LIBRARY) if reading else (FOLDER,)):
            raise PermissionError(f"a python grader may not reach {path}: only its own folder")


def main() -> None:
    given = json.loads(sys.stdin.read())
    out = sys.stdout
    sys.stdout = sys.stderr = io.StringIO()
    sys.addaudithook(_hook)
    namespace = {"__name__": "grader"}
    try:
        exec(compile(given["source"], "grader.py", "exec"), namespace)
        value = namespace["grade"](given["sample"], given["item"])
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TypeError(f"grade returned {type(value).__name__} {value!r}, not a finite number")
        answer = {"lorag_grade": float(value)}
    except BaseException as error:  # the user's code: anything it raises is its result
        last = traceback.extract_tb(error.__traceback__)[-1:]
        where = f" (grader.py line {last[0].lineno})" if last and last[0].filename == "grader.py" else ""
        answer = {"lorag_grade": None, "error": f"{type(error).__name__}: {error}{where}"}
    out.write("\n" + json.dumps(answer) + "\n")
    out.flush()


main()
