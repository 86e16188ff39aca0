"""An AWS API emulator on loopback: moto's server with the handlers of missing_apis in front.

Run as `python -m tests.deploy.aws_emulator`: it prints `listening on http://127.0.0.1:PORT` once
it answers, then serves until killed. Its own process, so Terraform's hundreds of calls do not
share pytest's interpreter, and every round trip starts from an empty account.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import urllib.parse
from typing import Any

from tests.deploy import moto_fixes
from tests.deploy.missing_apis import Call, MissingApis

# AWS-managed policies (the Batch and ECS service roles attach them) exist in moto only then.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/")


def _efs_file_system(region: str, fs_id: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.efs.models import efs_backends

    return efs_backends[DEFAULT_ACCOUNT_ID][region].file_systems_by_id.get(fs_id)


def _fsx_tagger(region: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.fsx.models import fsx_backends

    return fsx_backends[DEFAULT_ACCOUNT_ID][region].tagger


class Emulator:
    """WSGI app: a request the missing APIs know is answered there, every other one by moto."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.moto = DomainDispatcherApplication(create_backend_app)
        self.missing = MissingApis(_efs_file_system, _fsx_tagger)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        scope = SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if scope:
            content_type = environ.get("CONTENT_TYPE", "")
            form = (dict(urllib.parse.parse_qsl(body.decode(errors="replace")))
                    if content_type.startswith("application/x-www-form-urlencoded") else {})
            call = Call(service=scope["service"], method=environ["REQUEST_METHOD"],
                        path=environ.get("PATH_INFO", ""), region=scope["region"], form=form,
                        body=body, target=environ.get("HTTP_X_AMZ_TARGET", ""))
            answer = self.missing.answer(call)
            if answer is not None:
                status, headers, payload = answer
                start_response(f"{status} {'OK' if status == 200 else 'Error'}",
                               [*headers.items(), ("Content-Length", str(len(payload)))])
                return [payload]
        return self.moto(environ, start_response)


def main() -> int:
    """Serve on a free loopback port until killed."""
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_fixes.apply_all()
    from moto.core.config import default_user_config

    # Jobs are records, not containers: an emulated account has no instances to run them on.
    default_user_config["batch"]["use_docker"] = False
    server = make_server("127.0.0.1", 0, Emulator(), threaded=True,
                         request_handler=MotoRequestHandler)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
