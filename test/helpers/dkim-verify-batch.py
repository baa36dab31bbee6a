"""dkimpy (Debian: python3-dkim) for many messages in one process; see dkim-verify.py.

Reads one JSON object on stdin: {"messages": [<base64 bytes>, ...], "records": {"<name>": "<TXT value>"}}
and prints {"results": [[true|false, ...], ...]}: per message, one entry per DKIM-Signature
field, top first. DNS is answered from "records" only; nothing goes to the network. Python starts
slowly, so integration tests that check dozens of messages send them all at once.
"""
import base64
import json
import re
import sys

import dkim


def verify(message, dnsfunc):
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
    return results


def main():
    request = json.load(sys.stdin)
    records = {k.lower().rstrip("."): v.encode("ascii") for k, v in request["records"].items()}

    def dnsfunc(name, timeout=5):
        return records.get(name.decode("ascii").lower().rstrip("."))

    results = [verify(base64.b64decode(m), dnsfunc) for m in request["messages"]]
    json.dump({"results": results}, sys.stdout)


main()
