#!/usr/bin/env python3
"""Drops the wasm `name` custom section (debug symbol names) from a built module, in place.

Run on worker-build's *output*: wasm-bindgen has already read the module by then (it
needs the unstripped input), and the runtime never reads the section. It is over a
third of the module's bytes.
"""
import sys


def leb(data, i):
    result = shift = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def strip(path):
    data = open(path, "rb").read()
    if data[:4] != b"\0asm":
        sys.exit(f"{path}: not a wasm module")
    out = bytearray(data[:8])
    i = 8
    while i < len(data):
        start = i
        section_id = data[i]
        size, body = leb(data, i + 1)
        end = body + size
        keep = True
        if section_id == 0:
            name_len, name_at = leb(data, body)
            keep = data[name_at : name_at + name_len] != b"name"
        if keep:
            out += data[start:end]
        i = end
    open(path, "wb").write(out)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        strip(p)
