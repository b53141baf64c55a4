"""Docker's credential-helper protocol: ask a `docker-credential-NAME` program.

`docker login` with a `credsStore` (or a `credHelpers` entry for a registry)
in ~/.docker/config.json keeps the password in a helper, not in the file:
`pass`, `secretservice`, `osxkeychain`, `ecr-login`, `gcloud` ... Reading
one is `docker-credential-NAME get` with the server URL on stdin; it prints
``{"ServerURL": ..., "Username": ..., "Secret": ...}``, or says
"credentials not found in native keychain" and exits non-zero. Nothing of
its answer is ever logged or shown (a helper's error output is shown only
when it holds no secret: the helper failed before answering).
"""

from __future__ import annotations

import json
import subprocess

from berth.core.errors import RegistryError

NOT_FOUND = "credentials not found in native keychain"
_TIMEOUT = 60  # a keychain may ask the user to unlock it


def get(helper: str, server: str) -> tuple[str, str] | None:
    """(username, secret) the helper keeps for `server`, or None.

    An identity token (username "<token>") is not a password: None. A
    helper that is missing or fails raises RegistryError with Docker's
    message ("error getting credentials - err: ..., out: `...`").
    """
    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run([program, "get"], input=server.encode(), capture_output=True, timeout=_TIMEOUT,
                              close_fds=True)
    except FileNotFoundError:
        raise RegistryError(f'error getting credentials - err: exec: "{program}": executable file not found '
                            "in $PATH, out: ``") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegistryError(f"error getting credentials - err: {program}: {exc}, out: ``") from None
    out = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        if NOT_FOUND in out:
            return None
        shown = out if len(out) < 500 and "{" not in out else "(not shown)"
        raise RegistryError(f"error getting credentials - err: exit status {proc.returncode}, out: `{shown}`")
    try:
        answer = json.loads(out)
        username, secret = answer["Username"], answer["Secret"]
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"error getting credentials - err: {program} answered something that is not "
                            "its JSON, out: `(not shown)`") from None
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        return None
    if username == "<token>":
        return None
    return username, secret
