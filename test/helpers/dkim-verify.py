"""Second, independent DKIM verifier for Petrel's tests: dkimpy (Debian: python3-dkim).

Reads one JSON object on stdin: {"message": <base64 bytes>, "records": {"<name>": "<TXT value>"}}
and prints {"results": [true|false, ...]}, one entry per DKIM-Signature field, top first.
DNS is answered from "records" only; nothing goes to the network.
"""
import base64
import json
import re
import sys

import dkim


def main():
    request = json.load(sys.stdin)
    message = base64.b64decode(request["message"])
    records = {k.lower().rstrip("."): v.encode("ascii") for k, v in request["records"].items()}

    def dnsfunc(name, timeout=5):
        return records.get(name.decode("ascii").lower().rstrip("."))

    header_block = re.split(rb"\r?\n\r?\n", message, maxsplit=1)[0]
    count = len(re.findall(rb"(?im)^dkim-signature[ \t]*:", header_block))
    results = []
    for idx in range(count):
        verifier = dkim.DKIM(message, minkey=1024)
        try:
            results.append(bool(verifier.verify(idx=idx, dnsfunc=dnsfunc)))
        except dkim.ValidationError as err:
            # A body hash mismatch is raised rather than returned; it is a failed signature all the same.
            print(f"signature {idx}: {err}", file=sys.stderr)
            results.append(False)
    json.dump({"results": results}, sys.stdout)


main()
