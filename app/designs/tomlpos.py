"""Line numbers of the keys of a TOML document, so design errors can name their line.

`tomllib` gives values without positions; this scanner walks text that tomllib has already
accepted and records, for every key path (tables, array-of-tables entries, inline tables and
array items), the 1-based line where it starts.
"""

from __future__ import annotations

KeyPath = tuple[str | int, ...]


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.positions: dict[KeyPath, int] = {}
        self.aot: dict[KeyPath, int] = {}
        """Array-of-tables paths (concrete) -> number of entries so far."""

    def peek(self, offset: int = 0) -> str:
        j = self.i + offset
        return self.text[j] if j < len(self.text) else ""

    def advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.i < len(self.text) and self.text[self.i] == "\n":
                self.line += 1
            self.i += 1

    def skip_ws(self, newlines: bool) -> None:
        while self.i < len(self.text):
            c = self.text[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                while self.i < len(self.text) and self.text[self.i] != "\n":
                    self.advance()
            else:
                return

    def string(self) -> str:
        """Consume a string literal; return its raw content (escapes are kept as written)."""
        for quote in ('"""', "'''"):
            if self.text.startswith(quote, self.i):
                self.advance(3)
                end = self.i
                while not self.text.startswith(quote, end) or (
                    quote == '"""' and self._escaped(end)
                ):
                    end += 1
                while self.text.startswith(quote[0], end + 3):
                    end += 1
                content = self.text[self.i : end]
                self.advance(end - self.i + 3)
                return content
        quote = self.peek()
        self.advance()
        start = self.i
        while self.peek() != quote or (quote == '"' and self._escaped(self.i)):
            self.advance()
        content = self.text[start : self.i]
        self.advance()
        return content

    def _escaped(self, j: int) -> bool:
        backslashes = 0
        while j - 1 - backslashes >= 0 and self.text[j - 1 - backslashes] == "\\":
            backslashes += 1
        return backslashes % 2 == 1

    def key(self) -> list[str]:
        """A dotted key, up to (not including) `=` or `]`."""
        parts: list[str] = []
        while True:
            self.skip_ws(newlines=False)
            if self.peek() in ('"', "'"):
                parts.append(self.string())
            else:
                start = self.i
                while self.peek() and (self.peek().isalnum() or self.peek() in "_-"):
                    self.advance()
                parts.append(self.text[start : self.i])
            self.skip_ws(newlines=False)
            if self.peek() == ".":
                self.advance()
                continue
            return parts

    def concrete(self, keys: list[str]) -> KeyPath:
        """Resolve a header's keys, stepping into the last entry of arrays of tables."""
        path: KeyPath = ()
        for k in keys:
            path = (*path, k)
            if path in self.aot:
                path = (*path, self.aot[path] - 1)
        return path

    def value(self, path: KeyPath) -> None:
        self.skip_ws(newlines=False)
        c = self.peek()
        if c in ('"', "'"):
            self.string()
        elif c == "{":
            self.advance()
            while True:
                self.skip_ws(newlines=True)
                if self.peek() == "}":
                    self.advance()
                    return
                if self.peek() == ",":
                    self.advance()
                    continue
                line = self.line
                keys = self.key()
                sub = (*path, *keys)
                self.positions.setdefault(sub, line)
                self.advance()  # "="
                self.value(sub)
        elif c == "[":
            self.advance()
            index = 0
            while True:
                self.skip_ws(newlines=True)
                if self.peek() == "]":
                    self.advance()
                    return
                if self.peek() == ",":
                    self.advance()
                    continue
                self.positions.setdefault((*path, index), self.line)
                self.value((*path, index))
                index += 1
        else:
            while self.peek() and self.peek() not in ",]}\n#":
                self.advance()

    def run(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        while self.i < len(self.text):
            self.skip_ws(newlines=True)
            if self.i >= len(self.text):
                break
            line = self.line
            if self.text.startswith("[[", self.i):
                self.advance(2)
                keys = self.key()
                self.advance(2)
                parent = self.concrete(keys[:-1])
                array = (*parent, keys[-1])
                self.aot[array] = self.aot.get(array, 0) + 1
                table = (*array, self.aot[array] - 1)
                self.positions.setdefault(array, line)
                self.positions.setdefault(table, line)
            elif self.peek() == "[":
                self.advance()
                keys = self.key()
                self.advance()
                table = self.concrete(keys)
                self.positions.setdefault(table, line)
            else:
                keys = self.key()
                path = (*table, *keys)
                self.positions.setdefault(path, line)
                self.advance()  # "="
                self.value(path)
        return self.positions


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map every key path of a valid TOML document to its 1-based line."""
    return _Scanner(text).run()


def line_of(positions: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of `path`, or of its longest prefix that has one."""
    for end in range(len(path), 0, -1):
        found = positions.get(tuple(path[:end]))
        if found is not None:
            return found
    return None
