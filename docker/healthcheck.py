"""Container HEALTHCHECK: exit 0 if http://127.0.0.1:PORT/<path> answers 200 (stdlib only).

PORT is $VC_GENERAL_HTTP_PORT (media node), else $PORT (AI services), else 8080.

    python /usr/local/bin/healthcheck.py [/readyz]

Why a script: images have no curl (smaller, fewer CVEs), and one file serves every image.
"""

import os
import sys
import urllib.request

path = sys.argv[1] if len(sys.argv) > 1 else "/readyz"
port = os.environ.get("VC_GENERAL_HTTP_PORT") or os.environ.get("PORT") or "8080"
url = f"http://127.0.0.1:{port}{path}"
try:
    with urllib.request.urlopen(url, timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"{url}: {exc}", file=sys.stderr)
    sys.exit(1)
