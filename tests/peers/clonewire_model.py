"""The clonewire data model and hash (docs/protocol.md, Data model and Hash),
independently of the Rust code: merge-patch apply on a topic, keeping the topic hash
as a sum of leaf hashes updated per changed leaf."""

import rfc8785
import xxhash

MASK = (1 << 64) - 1


def leaf_hash(path, value):
    """XXH3_64 (seed 0) of the UTF-8 bytes of JCS(path ++ [value])."""
    return xxhash.xxh3_64_intdigest(rfc8785.dumps(list(path) + [value]), seed=0)


def hex_hash(h):
    return "%016x" % (h & MASK)


class Topic:
    """One topic's value as a leaf set, with its hash maintained on every apply."""

    def __init__(self, name, value=None):
        self.name = name
        self.root = {}
        self.hash = 0
        if value:
            self.apply(value)

    def apply(self, patch):
        if not isinstance(patch, dict):
            raise ValueError("a topic's patch must be a JSON object")
        self._merge(self.root, patch, [self.name])

    def hex(self):
        return hex_hash(self.hash)

    def _remove(self, node, path):
        if isinstance(node, dict):
            for key, child in node.items():
                self._remove(child, path + [key])
        else:
            self.hash = (self.hash - leaf_hash(path, node)) & MASK

    def _merge(self, target, patch, path):
        for key, value in patch.items():
            here = path + [key]
            if value is None:
                if key in target:
                    self._remove(target.pop(key), here)
            elif isinstance(value, dict):
                current = target.get(key)
                if not isinstance(current, dict):
                    if key in target:
                        self._remove(target.pop(key), here)
                    current = {}
                self._merge(current, value, here)
                if current:
                    target[key] = current
                else:
                    target.pop(key, None)  # empty objects mean absent
            else:
                if key in target:
                    self._remove(target.pop(key), here)
                target[key] = value
                self.hash = (self.hash + leaf_hash(here, value)) & MASK


def self_test():
    """The test vectors of docs/protocol.md, Hash › Test vectors."""
    vectors = [
        (["taskProxies", "1/foo", "status", "running"], "744f482e6da63ce9"),
        (["workflow", "name", "demo"], "13e83014ca4ce3ad"),
        (["taskProxies", "1/foo", "flowNums", [1, 2]], "7d43cd39d72797bd"),
        (["workflow", "progress", 1.5], "8ecffc0c5858efad"),
        (["workflow", "count", 100], "44e735ca776b141f"),
        (["workflow", "big", 1e21], "1e3bff465a4eccce"),
        (["workflow", "ok", True], "dab6187a9031fe2d"),
    ]
    for parts, want in vectors:
        got = hex_hash(leaf_hash(parts[:-1], parts[-1]))
        assert got == want, (parts, got, want)
    doc = Topic("taskProxies", {"1/foo": {"status": "running", "name": "foo"}, "1/bar": {"status": "waiting"}})
    assert doc.hex() == "0149f998f8252d36", doc.hex()
